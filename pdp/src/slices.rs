//! Policy slicing: for each request shape, only the policies that can apply to it.
//!
//! Cedar evaluates every policy of the set it is given. Most policies cannot apply to a
//! given (principal type, action, resource type): their scope names another action, or an
//! `is` type, or an `in` target that the schema says the type can never be below. Such a
//! policy can neither be satisfied nor raise an error (Cedar checks the scope before the
//! conditions), so leaving it out changes no decision and no determining policy; it only
//! saves the time of evaluating it. The slices are built once per bundle.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
    ResourceConstraint, Schema,
};

/// A request shape: the principal type, the action and the resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    pub principal: EntityTypeName,
    pub action: EntityUid,
    pub resource: EntityTypeName,
}

/// The policy set for each request shape the schema allows.
#[derive(Debug, Default)]
pub(crate) struct Slices {
    by_shape: HashMap<Shape, PolicySet>,
}

impl Slices {
    /// Slices `policies` for every request environment of `schema`.
    pub(crate) fn build(
        schema: &Schema,
        policies: &PolicySet,
        action_ancestors: &HashMap<EntityUid, HashSet<EntityUid>>,
    ) -> Self {
        let hierarchy = TypeHierarchy { schema };
        let mut by_shape = HashMap::new();
        for env in schema.request_envs() {
            let shape = Shape {
                principal: env.principal().clone(),
                action: env.action().clone(),
                resource: env.resource().clone(),
            };
            let no_ancestors = HashSet::new();
            let ancestors = action_ancestors.get(&shape.action).unwrap_or(&no_ancestors);
            let applies = |p: &Policy| {
                principal_may_match(&hierarchy, &shape.principal, p.principal_constraint())
                    && action_may_match(&shape.action, ancestors, p.action_constraint())
                    && resource_may_match(&hierarchy, &shape.resource, p.resource_constraint())
            };
            let slice = subset(policies, applies);
            by_shape.insert(shape, slice);
        }
        Self { by_shape }
    }

    /// The policies that can apply to this request shape; `None` when the schema does not
    /// allow the shape at all.
    pub(crate) fn get(&self, shape: &Shape) -> Option<&PolicySet> {
        self.by_shape.get(shape)
    }

    /// The actions the schema allows between a principal type and a resource type,
    /// sorted by uid.
    pub(crate) fn actions_between(
        &self,
        principal: &EntityTypeName,
        resource: &EntityTypeName,
    ) -> Vec<EntityUid> {
        let mut actions: Vec<EntityUid> = self
            .by_shape
            .keys()
            .filter(|s| &s.principal == principal && &s.resource == resource)
            .map(|s| s.action.clone())
            .collect();
        actions.sort_by_key(ToString::to_string);
        actions
    }
}

/// A copy of `policies` with only the static and linked policies `keep` accepts.
fn subset(policies: &PolicySet, keep: impl Fn(&Policy) -> bool) -> PolicySet {
    let mut out = PolicySet::new();
    let mut templates_added = HashSet::new();
    for policy in policies.policies().filter(|p| keep(p)) {
        // INVARIANT: every policy comes from a valid policy set, so adding it (or
        // re-linking it) to a subset of that set cannot fail.
        match (policy.template_id(), policy.template_links()) {
            (Some(template_id), Some(links)) => {
                if templates_added.insert(template_id.clone()) {
                    let template = policies
                        .template(template_id)
                        .expect("a linked policy's template is in its set");
                    out.add_template(template.clone())
                        .expect("template ids are unique");
                }
                out.link(template_id.clone(), policy.id().clone(), links)
                    .expect("the link was valid in the full set");
            }
            _ => out.add(policy.clone()).expect("policy ids are unique"),
        }
    }
    out
}

struct TypeHierarchy<'s> {
    schema: &'s Schema,
}

impl TypeHierarchy<'_> {
    /// Can an entity of type `ty` be `in` the entity `target` (itself or a descendant)?
    fn may_be_in(&self, ty: &EntityTypeName, target: &EntityUid) -> bool {
        let target_type = target.type_name();
        ty == target_type
            || self
                .schema
                .ancestors(ty)
                .is_some_and(|mut ancestors| ancestors.any(|a| a == target_type))
    }
}

fn principal_may_match(h: &TypeHierarchy<'_>, ty: &EntityTypeName, c: PrincipalConstraint) -> bool {
    match c {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Eq(uid) => uid.type_name() == ty,
        PrincipalConstraint::Is(is) => &is == ty,
        PrincipalConstraint::In(uid) => h.may_be_in(ty, &uid),
        PrincipalConstraint::IsIn(is, uid) => &is == ty && h.may_be_in(ty, &uid),
    }
}

fn resource_may_match(h: &TypeHierarchy<'_>, ty: &EntityTypeName, c: ResourceConstraint) -> bool {
    match c {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(uid) => uid.type_name() == ty,
        ResourceConstraint::Is(is) => &is == ty,
        ResourceConstraint::In(uid) => h.may_be_in(ty, &uid),
        ResourceConstraint::IsIn(is, uid) => &is == ty && h.may_be_in(ty, &uid),
    }
}

fn action_may_match(
    action: &EntityUid,
    ancestors: &HashSet<EntityUid>,
    c: ActionConstraint,
) -> bool {
    match c {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => &uid == action,
        ActionConstraint::In(groups) => groups.iter().any(|g| g == action || ancestors.contains(g)),
    }
}
