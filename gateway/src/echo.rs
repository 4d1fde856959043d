//! The demo's upstream: a plain HTTP server that answers every request with what it
//! received from the gateway, the forwarded context verified with the gateway's key.

use async_trait::async_trait;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextVerifier};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The echo upstream.
pub struct EchoUpstream {
    /// Where it listens.
    pub address: String,
    /// Verifies the gateway's forwarded context.
    pub verifier: ContextVerifier,
}

#[async_trait]
impl BackgroundService for EchoUpstream {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match TcpListener::bind(&self.address).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "gatehouse::demo", address = %self.address, error = %e, "echo upstream cannot listen");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let verifier = self.verifier.clone();
                        tokio::spawn(async move { let _ = answer(stream, &verifier).await; });
                    }
                }
            }
        }
    }
}

async fn answer(mut stream: TcpStream, verifier: &ContextVerifier) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        text.lines()
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
        "request": request_line,
        "traceparent": header("traceparent"),
        "forwarded_context": context,
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
