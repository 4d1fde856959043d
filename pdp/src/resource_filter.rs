//! Policies compiled into a filter: which resources of a type may a principal act on?
//!
//! Cedar's type-aware partial evaluation (TPE) evaluates the policies with the principal,
//! the action and the context known and the resource unknown except for its type. Each
//! policy is then true, false, an error, or a *residual*: an expression over the
//! resource. This module turns the residuals into a [`Filter`] in Cedar's own terms
//! (attribute equalities, `resource in E`, `resource == E`), which the adapters turn into
//! SQL and search filters.
//!
//! The filter must allow exactly what [`Pdp::decide`](crate::Pdp::decide) allows, one
//! resource at a time:
//! - Cedar: allowed when some permit holds and no forbid does. So the filter is
//!   `any(permits) && !any(forbids)`.
//! - The decision point fails closed on any evaluation error; a policy that errors for
//!   every resource therefore denies every resource ([`Filter::Never`]).
//! - An agent is allowed only when it and its user both are: the filter is both legs'.
//! - A residual with anything this module does not know how to express (a `like`, an
//!   arithmetic, a possible error) makes the whole filter [`ResourceFilter::Untranslatable`]:
//!   the caller must decide item by item. Never a guess.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy::pst::{self, BinaryOp, Expr, Literal, UnaryOp, Var};
use cedar_policy::{
    Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, PartialEntities,
    PartialEntityUid, PartialRequest, PolicyId, PrincipalConstraint, ResourceConstraint,
};
use gatehouse_core::TenantId;
use gatehouse_core::filter::{EntityRef, Filter, Scalar};
use serde_json::{Map, Value};

use crate::bundle::Bundle;
use crate::slices::Shape;

/// A list question: which resources of `resource_type` may `principal` take `action` on?
#[derive(Debug, Clone)]
pub struct ResourceQuery {
    /// The tenant, fixed at the edge.
    pub tenant: TenantId,
    /// A `User`, an `Agent` (acting for a user) or a `ShareLink`.
    pub principal: EntityUid,
    /// The action, e.g. `Action::"document:read"`.
    pub action: EntityUid,
    /// The resource type, e.g. `Document`.
    pub resource_type: EntityTypeName,
    /// For an agent: the user its credential says it acts for.
    pub acting_for: Option<EntityUid>,
    /// The request context as Cedar JSON (as in [`crate::AccessRequest`]).
    pub context: Map<String, Value>,
}

/// The answer to a [`ResourceQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceFilter {
    /// Exactly the resources the decision point allows.
    Exact(Filter),
    /// The policies left a condition no filter expresses: decide item by item.
    Untranslatable {
        /// What could not be translated, for logs and metrics.
        reason: String,
    },
}

impl From<crate::AccessRequest> for ResourceQuery {
    /// The same question about every resource of the request's resource type.
    fn from(request: crate::AccessRequest) -> Self {
        Self {
            resource_type: request.resource.type_name().clone(),
            tenant: request.tenant,
            principal: request.principal,
            action: request.action,
            acting_for: request.acting_for,
            context: request.context,
        }
    }
}

impl ResourceQuery {
    /// The same question as an [`crate::AccessRequest`] about a placeholder resource of
    /// the type (to reuse the decision point's checks of principals and contexts).
    pub(crate) fn as_access_request(&self) -> crate::AccessRequest {
        crate::AccessRequest {
            tenant: self.tenant.clone(),
            principal: self.principal.clone(),
            action: self.action.clone(),
            resource: EntityUid::from_type_name_and_id(
                self.resource_type.clone(),
                EntityId::new(""),
            ),
            acting_for: self.acting_for.clone(),
            context: self.context.clone(),
        }
    }
}

/// Why one leg could not be compiled.
pub(crate) type Untranslatable = String;

/// The filter of one principal (one leg of a delegated request).
pub(crate) fn leg_filter(
    bundle: &Bundle,
    principal: &EntityUid,
    query: &ResourceQuery,
    context: &Context,
    entities: &Entities,
) -> Result<Filter, Untranslatable> {
    let shape = Shape {
        principal: principal.type_name().clone(),
        action: query.action.clone(),
        resource: query.resource_type.clone(),
    };
    let Some(policies) = bundle.policies_for(&shape) else {
        // The schema does not allow this action between these types: nothing is allowed.
        return Ok(Filter::Never);
    };
    let schema = bundle.schema();
    let request = PartialRequest::new(
        PartialEntityUid::from_concrete(principal.clone()),
        query.action.clone(),
        PartialEntityUid::new(query.resource_type.clone(), None),
        Some(context.clone()),
        schema,
    )
    .map_err(|e| format!("partial request: {e}"))?;
    let known = PartialEntities::from_concrete(slice(entities, principal, &query.tenant), schema)
        .map_err(|e| format!("partial entities: {e}"))?;
    let response = policies
        .tpe(&request, &known, schema)
        .map_err(|e| format!("partial evaluation: {e}"))?;
    if response.error_permits().next().is_some() || response.error_forbids().next().is_some() {
        // A policy that errors whatever the resource: the decision point denies them all.
        return Ok(Filter::Never);
    }
    let residual = |id: &PolicyId| -> Result<Filter, Untranslatable> {
        let policy = response
            .get_policy(id)
            .ok_or_else(|| format!("no residual for policy {id}"))?;
        let filter = residual_filter(&policy).map_err(|why| format!("policy {id}: {why}"))?;
        Ok(fold_required(
            filter,
            bundle,
            &query.resource_type.to_string(),
        ))
    };
    let holding: HashSet<&PolicyId> = response
        .true_permits()
        .chain(response.true_forbids())
        .collect();
    let residuals: HashSet<&PolicyId> = response
        .residual_permits()
        .chain(response.residual_forbids())
        .collect();
    let (mut permits, mut forbids) = (Vec::new(), Vec::new());
    // In the bundle's order (the response's sets have none), so that a principal's filter,
    // and the SQL made from it, is always written the same way.
    for policy in policies.policies() {
        let id = policy.id();
        let part = if holding.contains(id) {
            Filter::Always
        } else if residuals.contains(id) {
            residual(id)?
        } else {
            continue;
        };
        match policy.effect() {
            Effect::Permit => permits.push(part),
            Effect::Forbid => forbids.push(part),
        }
    }
    // any(permits) && !any(forbids), the second written as all of the negations.
    let not_forbidden = forbids.into_iter().map(Filter::negate);
    Ok(Filter::all(
        std::iter::once(Filter::any(permits)).chain(not_forbidden),
    ))
}

/// What partial evaluation reads: the principal, the tenant and their ancestors (a
/// store may hand over far more, such as a whole tenant, and converting entities costs
/// time in proportion to their number).
fn slice(entities: &Entities, principal: &EntityUid, tenant: &TenantId) -> Entities {
    let roots = [principal.clone(), crate::uid::tenant(tenant)];
    let mut wanted: Vec<Entity> = Vec::new();
    for root in &roots {
        let ancestors = entities.ancestors(root).into_iter().flatten();
        for uid in std::iter::once(root).chain(ancestors) {
            if let Some(entity) = entities.get(uid)
                && !wanted.iter().any(|e| e.uid() == *uid)
            {
                wanted.push(entity.clone());
            }
        }
    }
    Entities::from_entities(wanted, None).unwrap_or_else(|_| Entities::empty())
}

/// `resource has attr` is true for an attribute the schema requires of the type.
fn fold_required(filter: Filter, bundle: &Bundle, resource_type: &str) -> Filter {
    let fold = |parts: Vec<Filter>| {
        parts
            .into_iter()
            .map(|part| fold_required(part, bundle, resource_type))
    };
    match filter {
        Filter::Has(attr) if bundle.requires_attribute(resource_type, &attr) => Filter::Always,
        Filter::All(parts) => Filter::all(fold(parts)),
        Filter::Any(parts) => Filter::any(fold(parts)),
        Filter::Not(inner) => fold_required(*inner, bundle, resource_type).negate(),
        other => other,
    }
}

/// A residual policy (unconstrained scope, `when` clauses only) as a filter.
fn residual_filter(policy: &cedar_policy::Policy) -> Result<Filter, Untranslatable> {
    if !matches!(policy.principal_constraint(), PrincipalConstraint::Any)
        || !matches!(policy.resource_constraint(), ResourceConstraint::Any)
    {
        return Err("a residual with a scope".into());
    }
    let pst = policy.to_pst().map_err(|e| e.to_string())?;
    let clauses = match &pst {
        pst::Policy::Static(p) => p.body().clauses(),
        pst::Policy::Linked(p) => p.body().clauses(),
    };
    let parts = clauses
        .iter()
        .map(|clause| match clause {
            pst::Clause::When(e) => condition(e),
            pst::Clause::Unless(e) => condition(e).map(Filter::negate),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter::all(parts))
}

/// A boolean expression over the resource as a filter.
fn condition(expr: &Expr) -> Result<Filter, Untranslatable> {
    match expr {
        Expr::Literal(Literal::Bool(b)) => Ok(if *b { Filter::Always } else { Filter::Never }),
        Expr::UnaryOp {
            op: UnaryOp::Not,
            expr,
        } => condition(expr).map(Filter::negate),
        Expr::BinaryOp { op, left, right } => binary(*op, left, right),
        Expr::IfThenElse {
            cond,
            then_expr,
            else_expr,
        } => {
            // Sound for booleans: the condition cannot error (it translated).
            let cond = condition(cond)?;
            Ok(Filter::any([
                Filter::all([cond.clone(), condition(then_expr)?]),
                Filter::all([cond.negate(), condition(else_expr)?]),
            ]))
        }
        Expr::HasAttr { expr, attrs } if is_resource(expr) && attrs.tail.is_empty() => {
            Ok(Filter::Has(attrs.head.to_string()))
        }
        // `resource.flag` on its own: a boolean attribute.
        Expr::GetAttr { expr, attr } if is_resource(expr) => Ok(Filter::Equals {
            attr: attr.to_string(),
            value: Scalar::Bool(true),
        }),
        other => Err(format!("cannot filter on `{other}`")),
    }
}

fn binary(op: BinaryOp, left: &Arc<Expr>, right: &Arc<Expr>) -> Result<Filter, Untranslatable> {
    match op {
        BinaryOp::And => Ok(Filter::all([condition(left)?, condition(right)?])),
        BinaryOp::Or => Ok(Filter::any([condition(left)?, condition(right)?])),
        BinaryOp::Eq => equality(left, right).or_else(|_| equality(right, left)),
        BinaryOp::NotEq => equality(left, right)
            .or_else(|_| equality(right, left))
            .map(Filter::negate),
        BinaryOp::In if is_resource(left) => {
            let targets = entities_of(right)?;
            Ok(Filter::any(targets.into_iter().map(Filter::In)))
        }
        // `[E1, E2].contains(resource)`, e.g. an agent's granted tools.
        BinaryOp::Contains if is_resource(right) => {
            let members = entities_of(left)?;
            Ok(Filter::any(members.into_iter().map(Filter::Is)))
        }
        _ => Err(format!(
            "cannot filter on `{}`",
            Expr::BinaryOp {
                op,
                left: left.clone(),
                right: right.clone()
            }
        )),
    }
}

/// `resource == E` or `resource.attr == value`.
fn equality(subject: &Expr, value: &Expr) -> Result<Filter, Untranslatable> {
    let Expr::Literal(literal) = value else {
        return Err(format!("`{value}` is not a literal"));
    };
    if is_resource(subject) {
        return match literal {
            Literal::EntityUID(uid) => Ok(Filter::Is(entity_ref(uid))),
            _ => Ok(Filter::Never),
        };
    }
    match subject {
        Expr::GetAttr { expr, attr } if is_resource(expr) => Ok(Filter::Equals {
            attr: attr.to_string(),
            value: scalar(literal)?,
        }),
        other => Err(format!("`{other}` is not an attribute of the resource")),
    }
}

/// A literal entity, or a set of them.
fn entities_of(expr: &Expr) -> Result<Vec<EntityRef>, Untranslatable> {
    match expr {
        Expr::Literal(Literal::EntityUID(uid)) => Ok(vec![entity_ref(uid)]),
        Expr::Set(items) => items
            .iter()
            .map(|item| match item.as_ref() {
                Expr::Literal(Literal::EntityUID(uid)) => Ok(entity_ref(uid)),
                other => Err(format!("`{other}` is not an entity")),
            })
            .collect(),
        other => Err(format!("`{other}` is not a set of entities")),
    }
}

fn is_resource(expr: &Expr) -> bool {
    matches!(expr, Expr::Var(Var::Resource))
}

fn entity_ref(uid: &pst::EntityUID) -> EntityRef {
    EntityRef::new(uid.ty.to_string(), uid.eid.to_string())
}

fn scalar(literal: &Literal) -> Result<Scalar, Untranslatable> {
    Ok(match literal {
        Literal::Bool(b) => Scalar::Bool(*b),
        Literal::Long(n) => Scalar::Long(*n),
        Literal::String(s) => Scalar::String(s.to_string()),
        Literal::EntityUID(uid) => Scalar::Entity(entity_ref(uid)),
        other => return Err(format!("cannot filter on the literal `{other:?}`")),
    })
}
