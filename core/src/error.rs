//! The JSON error envelope every Gatehouse service answers with:
//! `{"error": {"code", "message"}}`, and for a request the gateway refused, also its
//! `decision_id` and `trace_id` (null when there is none). The code is stable (a client
//! matches on it); the message is for a person and never holds internals.

use serde::Serialize;

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail<'a> {
    /// The stable code, e.g. `forbidden`.
    pub code: &'a str,
    /// What is wrong, for a person.
    pub message: &'a str,
    /// For a request the gateway refused: which decision and trace.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestIds<'a>>,
}

/// The ids of a refused request, each null when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestIds<'a> {
    /// The decision that refused the request, when one was made.
    pub decision_id: Option<&'a str>,
    /// The request's W3C trace id.
    pub trace_id: Option<&'a str>,
}

impl<'a> ErrorBody<'a> {
    /// An error with `code` and `message`.
    pub fn new(code: &'a str, message: &'a str) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message,
                request: None,
            },
        }
    }

    /// The error of a refused request, naming its decision and trace.
    pub fn of_request(mut self, decision_id: Option<&'a str>, trace_id: Option<&'a str>) -> Self {
        self.error.request = Some(RequestIds {
            decision_id,
            trace_id,
        });
        self
    }

    /// The body as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // INVARIANT: a struct of strings always serializes.
        serde_json::to_value(self).expect("an error body serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refused_request_names_its_decision_and_trace_even_when_there_is_none() {
        let plain = ErrorBody::new("not_found", "no such document").to_json();
        assert_eq!(
            plain,
            json!({ "error": { "code": "not_found", "message": "no such document" } })
        );
        let refused = ErrorBody::new("forbidden", "no")
            .of_request(Some("d-1"), None)
            .to_json();
        assert_eq!(
            refused,
            json!({ "error": {
                "code": "forbidden", "message": "no", "decision_id": "d-1", "trace_id": null
            } })
        );
    }
}
