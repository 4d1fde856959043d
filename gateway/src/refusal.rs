//! A request the gateway answers itself with an error: the edge's refusals (credentials,
//! tenant, rate, route, decision) and the decision API's, in one type and one JSON
//! envelope ([`gatehouse_core::error::ErrorBody`]).

use gatehouse_core::error::ErrorBody;
use gatehouse_pdp::Decision;
use serde_json::Value;

/// The code of [`Refusal::audit_unavailable`].
pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

/// An error answer: its status, stable code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The stable code.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// For a 429: when to try again, in seconds.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 400: a required field is missing.
    pub fn missing(field: &str) -> Self {
        Self::bad("missing_field", format!("`{field}` is required"))
    }

    /// 503: no decision can be made now (fail closed).
    pub fn unavailable() -> Self {
        Self::new(
            503,
            "decision_unavailable",
            "the decision point cannot decide right now",
        )
    }

    /// 503: the decision's audit record could not be made durable, so nothing may be
    /// answered or done on it (fail closed).
    pub fn audit_unavailable() -> Self {
        Self::new(
            503,
            AUDIT_UNAVAILABLE,
            "the decision could not be recorded; nothing was done",
        )
    }

    /// 429: a tenant's plan rate.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::too_many(
            "rate_limited",
            "too many requests for this tenant's plan",
            retry_after,
        )
    }

    /// 429 with `code`: try again in `retry_after` seconds.
    pub fn too_many(code: &'static str, message: &str, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(429, code, message)
        }
    }

    /// The refusal of a denied request: 503 when the decision point could not decide
    /// (fail closed), 403 with the deny's code otherwise.
    pub fn for_deny(decision: &Decision) -> Self {
        if decision.is_unavailable() {
            return Self::unavailable();
        }
        let suspended = decision
            .determining_policies
            .iter()
            .any(|p| p == "tenant-suspended");
        let code = match decision.errors.first() {
            None if suspended => "tenant_suspended",
            None => "forbidden",
            Some(e) => e.code(),
        };
        Self::new(403, code, "the request is not allowed")
    }

    /// The JSON body: `{"error": {"code", "message"}}`.
    pub fn body(&self) -> Value {
        ErrorBody::new(self.code, &self.message).to_json()
    }

    /// The JSON body of a refused request, naming its decision and trace (null when
    /// there is none).
    pub fn request_body(&self, decision_id: Option<&str>, trace_id: Option<&str>) -> Value {
        ErrorBody::new(self.code, &self.message)
            .of_request(decision_id, trace_id)
            .to_json()
    }
}
