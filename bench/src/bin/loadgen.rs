//! An open-loop HTTP/1.1 load generator: requests are sent on a fixed schedule (`--rate`
//! per second), and each one's latency is measured from when it was *due*, not from when
//! a connection was free to send it, so a slow server cannot hide its queueing
//! ("coordinated omission"). `bench/gateway/run.sh` uses it to compare the latency that
//! nginx and gatehouse add at the same request rate.
//!
//!   loadgen --url http://127.0.0.1:8080 --requests FILE [--rate 5000] [--seconds 10]
//!           [--connections 64] [--json]
//!
//! FILE has one request per line, used in turn: `<path> [<Authorization header value>]`
//! for a GET, or tab-separated `<METHOD>\t<path>\t<Authorization>\t<JSON body>` for a
//! request with a body. Exit code 0 when it ran (whatever the answers), 2 on bad arguments, 1 when the
//! server could not be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USAGE: &str = "usage: loadgen --url http://HOST:PORT --requests FILE [--rate N] [--seconds N] [--connections N] [--json]";

struct Args {
    host: String,
    requests: Vec<Request>,
    rate: u64,
    seconds: u64,
    connections: usize,
    json: bool,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    non_2xx: u64,
    errors: u64,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let tally = runtime.block_on(run(&args));
    if tally.latencies_us.is_empty() {
        eprintln!("error: no request succeeded ({} errors)", tally.errors);
        std::process::exit(1);
    }
    report(&args, tally);
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: String::new(),
        requests: Vec::new(),
        rate: 5_000,
        seconds: 10,
        connections: 64,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => {
                let url = value()?;
                args.host = url
                    .strip_prefix("http://")
                    .ok_or("only http:// URLs")?
                    .trim_end_matches('/')
                    .to_string();
            }
            "--requests" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                args.requests = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(request_text)
                    .collect();
            }
            "--rate" => args.rate = number(&value()?)?,
            "--seconds" => args.seconds = number(&value()?)?,
            "--connections" => args.connections = number(&value()?)?,
            "--json" => args.json = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.host.is_empty() || args.requests.is_empty() {
        return Err("--url and a non-empty --requests file are required".into());
    }
    if args.rate == 0 || args.seconds == 0 || args.connections == 0 {
        return Err("--rate, --seconds and --connections must be positive".into());
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

/// The request line and headers (without Host, added per connection, which also ends the
/// headers) of a requests-file line; a body goes after the Host header.
fn request_text(line: &str) -> Request {
    let fields: Vec<&str> = line.trim().split('\t').collect();
    let (method, path, authorization, body) = match fields.as_slice() {
        [method, path, authorization, body] => (*method, *path, *authorization, *body),
        _ => {
            let (path, authorization) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            ("GET", path, authorization, "")
        }
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !authorization.trim().is_empty() {
        head.push_str(&format!("Authorization: {}\r\n", authorization.trim()));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    Request {
        head,
        body: body.to_string(),
    }
}

/// One request of the requests file.
struct Request {
    head: String,
    body: String,
}

async fn run(args: &Args) -> Tally {
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let next = Arc::new(AtomicU64::new(0));
    let requests: Arc<Vec<String>> = Arc::new(
        args.requests
            .iter()
            .map(|r| format!("{}Host: {}\r\n\r\n{}", r.head, args.host, r.body))
            .collect(),
    );
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (next, requests, host) = (next.clone(), requests.clone(), args.host.clone());
        tasks.push(tokio::spawn(async move {
            connection(&host, &requests, &next, total, start, interval).await
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            tally.latencies_us.extend(t.latencies_us);
            tally.non_2xx += t.non_2xx;
            tally.errors += t.errors;
        }
    }
    tally
}

/// Takes the next due request, waits until it is due, sends it and reads the answer,
/// until all are taken. Reconnects after an error.
async fn connection(
    host: &str,
    requests: &[String],
    next: &AtomicU64,
    total: u64,
    start: Instant,
    interval: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let mut stream: Option<BufReader<TcpStream>> = None;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            return tally;
        }
        let due = start + interval.mul_f64(n as f64);
        // Waiting for a due time wakes up to a timer tick late: that is the generator's
        // lateness, not the server's, so such a request is timed from when it was sent.
        // A request already overdue (the server kept this connection busy) is timed from
        // when it was due.
        let timed_from = if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        if stream.is_none() {
            stream = TcpStream::connect(host).await.ok().map(BufReader::new);
        }
        let Some(conn) = stream.as_mut() else {
            tally.errors += 1;
            continue;
        };
        let request = &requests[n as usize % requests.len()];
        match exchange(conn, request.as_bytes()).await {
            Ok(status) => {
                tally
                    .latencies_us
                    .push(timed_from.elapsed().as_micros() as u64);
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            }
            Err(_) => {
                tally.errors += 1;
                stream = None;
            }
        }
    }
}

/// Sends one request and reads one response (Content-Length or chunked); its status.
async fn exchange(conn: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    conn.get_mut().write_all(request).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            skip(conn, size + 2).await?;
            if size == 0 {
                break;
            }
        }
    } else {
        skip(conn, length).await?;
    }
    Ok(status)
}

async fn skip(conn: &mut BufReader<TcpStream>, mut n: usize) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    while n > 0 {
        let read = conn.read(&mut buf[..n.min(4096)]).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        n -= read;
    }
    Ok(())
}

fn report(args: &Args, mut tally: Tally) {
    tally.latencies_us.sort_unstable();
    let at = |q: f64| {
        let i = ((tally.latencies_us.len() as f64 * q).ceil() as usize).max(1) - 1;
        tally.latencies_us[i.min(tally.latencies_us.len() - 1)] as f64 / 1000.0
    };
    let (p50, p90, p99, p999) = (at(0.50), at(0.90), at(0.99), at(0.999));
    let max = at(1.0);
    let sent = tally.latencies_us.len();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "rate": args.rate, "seconds": args.seconds, "connections": args.connections,
                "responses": sent, "non_2xx": tally.non_2xx, "errors": tally.errors,
                "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "p99.9": p999, "max": max },
            })
        );
    } else {
        println!(
            "{sent} responses at {}/s ({} non-2xx, {} errors): p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms, max {max:.3} ms",
            args.rate, tally.non_2xx, tally.errors
        );
    }
}
