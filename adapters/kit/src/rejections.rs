//! Answers no handler wrote (axum's own rejections: a body over the limit, a missing
//! content type, an unknown method) in the same JSON envelope as every other error,
//! with a stable code, instead of axum's plain text.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;

use gatehouse_core::error::ErrorBody;

/// Wraps `router` so that every error answer is JSON: `router.layer(...)` in one call.
pub fn with_json_rejections<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::map_response(json_rejection))
}

/// An error answer that is not JSON, rewritten as the envelope; others pass unchanged.
async fn json_rejection(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "the method is not allowed here"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        s if s.is_client_error() => ("invalid_input", "the request is not valid"),
        _ => ("internal", "the request failed"),
    };
    let body = ErrorBody::new(code, message).to_json().to_string();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use axum::routing::post;

    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_json_413() {
        let router: axum::Router = with_json_rejections(
            axum::Router::new()
                .route(
                    "/",
                    post(|body: axum::body::Bytes| async move { body.len().to_string() }),
                )
                .layer(axum::extract::DefaultBodyLimit::max(8)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let client = reqwest::Client::new();
        let big = client
            .post(format!("http://{address}/"))
            .body("x".repeat(100))
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), 413);
        let body: serde_json::Value = big.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_large");
        let small = client
            .post(format!("http://{address}/"))
            .body("xy")
            .send()
            .await
            .unwrap();
        assert_eq!(small.text().await.unwrap(), "2", "answers pass unchanged");
    }
}
