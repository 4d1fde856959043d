//! A plain Pingora reverse proxy: every request to one upstream, nothing decided, nothing
//! audited. `bench/gateway/run.sh` runs it beside nginx and gatehouse so that the cost of
//! Pingora itself and the cost of Gatehouse's work on top of it are told apart.
//!
//!   pingora-passthrough <listen address> <upstream address> [threads]

use async_trait::async_trait;
use gatehouse_gateway::add_proxy_workers;
use pingora::prelude::{HttpPeer, Result};
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Passthrough {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, (): &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            &*self.upstream,
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, rest @ ..] = args.as_slice() else {
        eprintln!("usage: pingora-passthrough <listen address> <upstream address> [threads]");
        std::process::exit(2);
    };
    let threads = rest.first().and_then(|t| t.parse().ok()).unwrap_or(2);
    let conf = ServerConf {
        threads,
        work_stealing: false,
        // A benchmark baseline stops as soon as it is told to (Pingora's defaults wait
        // minutes for connections to drain).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // Run as gatehouse runs its proxy: one single-threaded service per thread.
    let passthrough = Passthrough {
        upstream: upstream.clone(),
    };
    add_proxy_workers(&mut server, &passthrough, listen, threads);
    server.run_forever();
}
