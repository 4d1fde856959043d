//! The JSON of the decision API. Requests use the AuthZEN 1.0 shapes throughout (a
//! subject, an action, a resource, a context), so an AuthZEN client can call Gatehouse's
//! richer endpoints with the bodies it already sends; unknown fields are ignored, as
//! AuthZEN requires.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A subject or a resource: `{"type": "User", "id": "acme-vera"}`. Types are the schema's
/// entity types, matched without regard to case. `properties` are not trusted as entity
/// data (entities come from the entity store); for an agent subject,
/// `properties.acting_for` names the user it acts for, and is checked.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EntityIn {
    /// The entity type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The entity id (absent in searches for the searched entity).
    pub id: Option<String>,
    /// Extra properties.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// An action: `{"name": "document:read"}` (or `Action::"document:read"`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionIn {
    /// The action's id.
    pub name: Option<String>,
}

/// One evaluation, or the defaults of many: every part may be missing here and be
/// required later.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvaluationIn {
    /// Who.
    pub subject: Option<EntityIn>,
    /// Does what.
    pub action: Option<ActionIn>,
    /// To what.
    pub resource: Option<EntityIn>,
    /// In which context (Cedar context attributes: `mfa`, `region`, tool `args`, ...).
    pub context: Option<Map<String, Value>>,
}

impl EvaluationIn {
    /// This evaluation, with what it leaves out taken from `defaults` (a part given here
    /// replaces the default's whole part, as AuthZEN specifies).
    pub fn or(self, defaults: &EvaluationIn) -> EvaluationIn {
        EvaluationIn {
            subject: self.subject.or_else(|| defaults.subject.clone()),
            action: self.action.or_else(|| defaults.action.clone()),
            resource: self.resource.or_else(|| defaults.resource.clone()),
            context: self.context.or_else(|| defaults.context.clone()),
        }
    }
}

/// Many evaluations, with defaults (AuthZEN's `evaluations` request).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvaluationsIn {
    /// The defaults.
    #[serde(flatten)]
    pub defaults: EvaluationIn,
    /// The evaluations, answered in order.
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationIn>>,
    /// How to answer.
    #[serde(default)]
    pub options: Option<OptionsIn>,
}

/// AuthZEN's options of an `evaluations` request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OptionsIn {
    /// `execute_all` (the default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

/// A search (AuthZEN's subject, resource and action searches) or a capabilities question.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchIn {
    /// The subject.
    pub subject: Option<EntityIn>,
    /// The action.
    pub action: Option<ActionIn>,
    /// The resource.
    pub resource: Option<EntityIn>,
    /// The context.
    pub context: Option<Map<String, Value>>,
    /// Which page.
    pub page: Option<PageIn>,
}

/// A page of a search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageIn {
    /// The previous page's `next_token`.
    pub token: Option<String>,
    /// At most this many results (default 50, at most 1000).
    pub limit: Option<usize>,
}
