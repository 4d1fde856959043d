//! The demo's upstream: a plain HTTP server that answers every request with what it
//! received from the gateway, the forwarded context verified with the gateway's key.

use async_trait::async_trait;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextVerifier};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use crate::runtime::tiny_http::{Answer, serve};

/// The echo upstream.
pub struct EchoUpstream {
    /// Where it listens.
    pub address: String,
    /// Verifies the gateway's forwarded context.
    pub verifier: ContextVerifier,
}

#[async_trait]
impl BackgroundService for EchoUpstream {
    async fn start(&self, shutdown: ShutdownWatch) {
        let verifier = self.verifier.clone();
        serve(&self.address, shutdown, move |head| echo(head, &verifier)).await;
    }
}

fn echo(head: &str, verifier: &ContextVerifier) -> Answer {
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let context = match header(CONTEXT_HEADER) {
        Some(token) => match verifier.verify(&token) {
            Ok(ctx) => json!(ctx),
            Err(e) => json!({ "invalid": e.to_string() }),
        },
        None => json!(null),
    };
    let body = json!({
        "upstream": "gatehouse demo echo",
        "request": head.lines().next().unwrap_or_default(),
        "traceparent": header("traceparent"),
        "forwarded_context": context,
    });
    Answer {
        status: "200 OK",
        content_type: "application/json",
        body: body.to_string(),
    }
}
