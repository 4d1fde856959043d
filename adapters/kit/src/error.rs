//! Adapter errors as data: a stable code, an HTTP status, a message safe to show.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why an adapter call failed. The message of each variant is safe to send to the client;
/// internal detail goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// No `x-gatehouse-context` header: the call did not come through the gateway.
    #[error("missing gateway context")]
    ContextMissing,
    /// A context that is forged, altered, expired or malformed.
    #[error("invalid gateway context")]
    ContextInvalid,
    /// A context already used once.
    #[error("gateway context already used")]
    ContextReplayed,
    /// A valid context, but for another action or resource than this call.
    #[error("the gateway context does not cover this call")]
    ContextMismatch,
    /// A further decision (a move's destination, an item of a bulk call) was a deny.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// Nothing with that id in this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is not acceptable; the message says which field and why.
    #[error("{0}")]
    InvalidInput(String),
    /// The change conflicts with existing data (a duplicate, a folder into itself, …).
    #[error("{0}")]
    Conflict(String),
    /// Something under legal hold cannot be deleted.
    #[error("under legal hold")]
    LegalHold,
    /// The database refused a row for this tenant (row-level security).
    #[error("refused by row-level security")]
    RowLevelSecurity,
    /// Larger than the tenant's plan allows.
    #[error("too large: at most {0} bytes")]
    TooLarge(u64),
    /// A content type the adapter cannot take.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A backend (PostgreSQL, S3, search) cannot be reached.
    #[error("backend unavailable")]
    Unavailable,
    /// Anything else; the detail is logged, not shown.
    #[error("internal error")]
    Internal,
}

impl AdapterError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ContextMissing => "context_missing",
            Self::ContextInvalid => "context_invalid",
            Self::ContextReplayed => "context_replayed",
            Self::ContextMismatch => "context_mismatch",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::InvalidInput(_) => "invalid_input",
            Self::Conflict(_) => "conflict",
            Self::LegalHold => "legal_hold",
            Self::RowLevelSecurity => "row_level_security",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable => "backend_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ContextMissing | Self::ContextInvalid | Self::ContextReplayed => {
                StatusCode::UNAUTHORIZED
            }
            Self::ContextMismatch | Self::Forbidden(_) | Self::RowLevelSecurity => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::LegalHold => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A database error as the client may see it: `what` names the missing thing for a
    /// "no row". The database's own message (SQL, constraint names) is logged only.
    pub fn from_db(error: sqlx::Error, what: &'static str) -> Self {
        match &error {
            sqlx::Error::RowNotFound => return Self::NotFound(what),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // insufficient_privilege: "new row violates row-level security policy"
                Some("42501") => return Self::RowLevelSecurity,
                Some("23505") => return Self::Conflict(format!("{what} already exists")),
                Some("23503") => return Self::NotFound(what),
                Some("23514" | "22001" | "22P02") => {
                    return Self::InvalidInput(format!("invalid {what}"));
                }
                _ => {}
            },
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => {
                tracing::warn!(target: "gatehouse::adapter", error = %error, "database unavailable");
                return Self::Unavailable;
            }
            _ => {}
        }
        tracing::error!(target: "gatehouse::adapter", error = %error, "database error");
        Self::Internal
    }
}

impl IntoResponse for AdapterError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let body = gatehouse_core::error::ErrorBody::new(self.code(), &message);
        (self.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_own_code_and_a_client_status() {
        let all = [
            AdapterError::ContextMissing,
            AdapterError::ContextInvalid,
            AdapterError::ContextReplayed,
            AdapterError::ContextMismatch,
            AdapterError::Forbidden("x".into()),
            AdapterError::NotFound("document"),
            AdapterError::InvalidInput("x".into()),
            AdapterError::Conflict("x".into()),
            AdapterError::LegalHold,
            AdapterError::RowLevelSecurity,
            AdapterError::TooLarge(1),
            AdapterError::UnsupportedMediaType,
            AdapterError::Unavailable,
            AdapterError::Internal,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(AdapterError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            AdapterError::from_db(sqlx::Error::RowNotFound, "folder").status(),
            404
        );
        assert_eq!(
            AdapterError::from_db(sqlx::Error::PoolTimedOut, "folder").status(),
            503
        );
    }
}
