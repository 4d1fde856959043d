//! A minimal HTTP/1.1 responder for the gateway's side endpoints (the metrics listener and
//! the demo upstream): one request per connection, answered by a function of its head.

use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An answer: status line text (`200 OK`), content type and body.
pub struct Answer {
    /// E.g. `200 OK`.
    pub status: &'static str,
    /// The `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Serves `address` until shutdown, answering each request with `answer(request head)`.
pub async fn serve<F>(address: &str, mut shutdown: ShutdownWatch, answer: F)
where
    F: Fn(&str) -> Answer + Clone + Send + Sync + 'static,
{
    let listener = match TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "gatehouse::server", address, error = %e, "cannot listen");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let answer = answer.clone();
                    tokio::spawn(async move { let _ = respond(stream, &answer).await; });
                }
            }
        }
    }
}

async fn respond<F: Fn(&str) -> Answer>(mut stream: TcpStream, answer: &F) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let a = answer(&String::from_utf8_lossy(&head));
    let response = format!(
        "HTTP/1.1 {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        a.status,
        a.content_type,
        a.body.len(),
        a.body
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
