//! A deny, explained in words a person can act on: which policy forbade it and what that
//! policy is for (its `@purpose`), which half of a delegated request failed, or what was
//! missing for a decision at all.

use gatehouse_pdp::{AccessRequest, Bundle, Decision, DecisionError, Effect, LegDecision};

/// Why a request was denied, for two readers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reason {
    /// For whoever runs the policies: names policies, entities and codes.
    pub admin: String,
    /// For the person (or agent) refused: what to do, without policy internals.
    pub user: String,
}

/// The reason for `decision` on `request`; `None` for an allow.
pub fn reason(bundle: &Bundle, request: &AccessRequest, decision: &Decision) -> Option<Reason> {
    if decision.effect == Effect::Allow {
        return None;
    }
    if let Some(error) = decision.errors.first() {
        return Some(for_error(error));
    }
    let what = format!(
        "{} on {}",
        request.action.id().unescaped(),
        request.resource
    );
    let Some(delegation) = &decision.delegation else {
        return Some(for_leg(
            bundle,
            &request.principal.to_string(),
            &decision.determining_policies,
            &what,
        ));
    };
    let (agent, user) = (&delegation.agent, &delegation.user);
    Some(match (agent.effect, user.effect) {
        (Effect::Deny, Effect::Allow) => {
            let leg = leg_reason(bundle, agent, &what);
            Reason {
                admin: format!(
                    "{} (the user {} it acts for is allowed)",
                    leg.admin, user.principal
                ),
                user: format!(
                    "{} The agent needs a capability that covers this action.",
                    leg.user
                ),
            }
        }
        (Effect::Allow, Effect::Deny) => {
            let leg = leg_reason(bundle, user, &what);
            Reason {
                admin: format!(
                    "{}; an agent never gets more than the user it acts for",
                    leg.admin
                ),
                user: format!("{} An agent can do only what its user may.", leg.user),
            }
        }
        _ => {
            let (a, u) = (
                leg_reason(bundle, agent, &what),
                leg_reason(bundle, user, &what),
            );
            Reason {
                admin: format!("{}; and {}", a.admin, u.admin),
                user: format!("{} {}", a.user, u.user),
            }
        }
    })
}

fn leg_reason(bundle: &Bundle, leg: &LegDecision, what: &str) -> Reason {
    if let Some(error) = leg.errors.first() {
        return for_error(error);
    }
    for_leg(bundle, &leg.principal, &leg.determining_policies, what)
}

/// A deny by forbids (named, with their purposes) or by default (nothing permits).
fn for_leg(bundle: &Bundle, principal: &str, forbids: &[String], what: &str) -> Reason {
    if forbids.is_empty() {
        return Reason {
            admin: format!("no policy permits {principal} {what}"),
            user: format!(
                "{principal} has no role, ownership, share or capability that allows {what}."
            ),
        };
    }
    let purposes: Vec<String> = forbids
        .iter()
        .map(|id| match bundle.sources().get(id) {
            Some(source) if !source.purpose.is_empty() => source.purpose.clone(),
            _ => id.clone(),
        })
        .collect();
    Reason {
        admin: format!(
            "{principal} {what} is forbidden by {}: {}",
            quoted(forbids),
            purposes.join("; ")
        ),
        user: format!("Not allowed: {}.", purposes.join("; ")),
    }
}

fn for_error(error: &DecisionError) -> Reason {
    let admin = format!("{}: {error}", error.code());
    let user = match error {
        DecisionError::UnknownPrincipal { .. } | DecisionError::UnknownResource { .. } => {
            format!("Gatehouse does not know {}.", subject_of(error))
        }
        DecisionError::TenantMismatch { .. } => "The request crosses tenants.".to_string(),
        DecisionError::NoDelegatingUser { .. } | DecisionError::DelegationMismatch { .. } => {
            "The agent does not act for this user.".to_string()
        }
        DecisionError::InvalidRequest { message } => {
            format!("The request does not fit the schema: {message}.")
        }
        DecisionError::StoreUnavailable { .. } => {
            "The decision point cannot decide right now; try again.".to_string()
        }
        DecisionError::InvalidEntities { .. }
        | DecisionError::PolicyEvaluation { .. }
        | DecisionError::FilterMismatch => {
            "The policies could not be evaluated for this request; an administrator must look at it."
                .to_string()
        }
    };
    Reason { admin, user }
}

fn subject_of(error: &DecisionError) -> &str {
    match error {
        DecisionError::UnknownPrincipal { uid } | DecisionError::UnknownResource { uid } => uid,
        _ => "it",
    }
}

fn quoted(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("{id:?}")).collect();
    quoted.join(", ")
}
