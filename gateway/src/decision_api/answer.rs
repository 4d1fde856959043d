//! The two ways a decided check is answered: AuthZEN's and Gatehouse's.

use serde_json::{Value, json};

use super::{ApiError, Decided, Flavor};

/// AuthZEN's answer: the decision, and for a deny its id and reasons (an allow carries no
/// context, which a PEP might not understand and then refuse).
pub(super) fn authzen_json(decided: &Decided) -> Value {
    if decided.decision.is_allowed() {
        return json!({ "decision": true });
    }
    let mut context = json!({ "decision_id": decided.id });
    if let Some(reason) = &decided.reason {
        context["reason_admin"] = json!({ "403": reason.admin });
        context["reason_user"] = json!({ "403": reason.user });
    }
    json!({ "decision": false, "context": context })
}

/// Gatehouse's answer: the whole decision.
pub(super) fn gatehouse_json(decided: &Decided) -> Value {
    let decision = &decided.decision;
    let errors: Vec<Value> = decision
        .errors
        .iter()
        .map(|e| json!({ "code": e.code(), "message": e.to_string() }))
        .collect();
    json!({
        "decision": decision.effect.as_str(),
        "decision_id": decided.id,
        "principal": decided.request.principal.to_string(),
        "action": decided.request.action.to_string(),
        "resource": decided.request.resource.to_string(),
        "determining_policies": decision.determining_policies,
        "reason": decided.reason,
        "errors": errors,
        "delegation": decision.delegation,
        "bundle": { "name": &*decision.bundle.name, "version": &*decision.bundle.version, "hash": &*decision.bundle.hash },
        "elapsed_us": decision.elapsed.as_micros() as u64,
    })
}

/// A batch item that could not be checked: a deny that says why.
pub(super) fn item_error(error: &ApiError, flavor: Flavor) -> Value {
    match flavor {
        Flavor::AuthZen => json!({
            "decision": false,
            "context": { "error": { "status": error.status, "code": error.code, "message": error.message } },
        }),
        Flavor::Gatehouse => json!({
            "decision": "deny",
            "error": { "status": error.status, "code": error.code, "message": error.message },
        }),
    }
}
