//! Decisions through an entity store: tenant scoping, delegation, failing closed.

use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid};
use gatehouse_core::TenantId;
use gatehouse_pdp::{
    AccessRequest, Bundle, CurrentBundle, Decision, DecisionError, Effect, EntityStore,
    MemoryStore, Pdp, StoreError,
};
use serde_json::json;

mod common;
use common::{repo, scratch_bundle};

fn pdp() -> Pdp {
    Pdp::new(Arc::new(CurrentBundle::new(
        Bundle::load(repo().join("policies")).unwrap(),
    )))
}

fn fixture(pdp: &Pdp) -> Entities {
    let text =
        std::fs::read_to_string(repo().join("policy-tests/fixtures/three-tenants.json")).unwrap();
    Entities::from_json_str(&text, Some(pdp.bundle().snapshot().schema())).unwrap()
}

fn store(pdp: &Pdp) -> MemoryStore {
    MemoryStore::new(&fixture(pdp), pdp.bundle().snapshot().schema()).unwrap()
}

fn request(tenant: &str, principal: &str, action: &str, resource: &str) -> AccessRequest {
    AccessRequest::parse(
        TenantId::parse(tenant).unwrap(),
        principal,
        action,
        resource,
    )
    .unwrap()
    .with_context(
        json!({ "now": "2026-06-01T00:00:00Z" })
            .as_object()
            .unwrap()
            .clone(),
    )
}

/// Decides a request in tenant `acme`.
fn ask(pdp: &Pdp, store: &MemoryStore, principal: &str, action: &str, resource: &str) -> Decision {
    decide(pdp, store, &request("acme", principal, action, resource))
}

fn decide(pdp: &Pdp, store: &impl EntityStore, r: &AccessRequest) -> Decision {
    pollster::block_on(pdp.decide(store, r))
}

#[test]
fn an_allowed_request_says_which_policy_and_which_bundle() {
    let pdp = pdp();
    let store = store(&pdp);
    let d = ask(
        &pdp,
        &store,
        r#"User::"acme-vera""#,
        "document:read",
        r#"Document::"acme-plan""#,
    );
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.determining_policies, ["role-viewer"]);
    assert!(d.errors.is_empty());
    assert_eq!(d.bundle, *pdp.bundle().snapshot().id());
    assert!(d.delegation.is_none());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["effect"], "allow");
    assert_eq!(json["bundle"]["name"], "gatehouse-base");
}

#[test]
fn the_store_loads_ancestors_and_never_another_tenants_entities() {
    let pdp = pdp();
    let store = store(&pdp);
    let acme = TenantId::parse("acme").unwrap();
    let uids: Vec<String> = store
        .slice(&acme, &[r#"Document::"acme-plan""#.parse().unwrap()])
        .iter()
        .map(|e| e.uid().to_string())
        .collect();
    for folder in [
        "acme-projects-2026-q4",
        "acme-projects-2026",
        "acme-projects",
        "acme-root",
    ] {
        assert!(uids.contains(&format!(r#"Folder::"{folder}""#)), "{uids:?}");
    }
    assert!(
        store
            .slice(&acme, &[r#"Document::"globex-secret""#.parse().unwrap()])
            .is_empty()
    );
    // Through the decision point, another tenant's document does not exist.
    let d = ask(
        &pdp,
        &store,
        r#"User::"acme-ada""#,
        "document:read",
        r#"Document::"globex-secret""#,
    );
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.errors[0].code(), "unknown_resource");
}

#[test]
fn a_principal_of_another_tenant_is_unknown_in_this_one() {
    let pdp = pdp();
    let store = store(&pdp);
    let d = decide(
        &pdp,
        &store,
        &request(
            "globex",
            r#"User::"acme-ada""#,
            "document:read",
            r#"Document::"globex-secret""#,
        ),
    );
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(
        d.errors,
        [DecisionError::UnknownPrincipal {
            uid: r#"User::"acme-ada""#.into()
        }]
    );
}

struct DownStore;

impl EntityStore for DownStore {
    async fn load(&self, _: &TenantId, _: &[EntityUid]) -> Result<Arc<Entities>, StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

/// A store built for a schema whose action groups differ from the bundle's.
#[test]
fn a_store_with_another_action_hierarchy_is_refused() {
    let pdp = pdp();
    let other = cedar_policy::Schema::from_cedarschema_str(
        &std::fs::read_to_string(repo().join("schemas/gatehouse.cedarschema"))
            .unwrap()
            .replace(
                "action \"document:read\", \"document:version\"\n  in [view]",
                "action \"document:read\", \"document:version\"\n  in [edit]",
            ),
    )
    .unwrap()
    .0;
    let store = MemoryStore::new(&fixture(&pdp), &other).unwrap();
    let d = ask(
        &pdp,
        &store,
        r#"User::"acme-vera""#,
        "document:read",
        r#"Document::"acme-plan""#,
    );
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.errors[0].code(), "invalid_entities", "{:?}", d.errors);
}

#[test]
fn an_unreachable_store_is_a_deny() {
    let pdp = pdp();
    let d = decide(
        &pdp,
        &DownStore,
        &request(
            "acme",
            r#"User::"acme-ada""#,
            "document:read",
            r#"Document::"acme-plan""#,
        ),
    );
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.errors[0].code(), "store_unavailable");
}

#[test]
fn a_policy_that_cannot_be_evaluated_turns_an_allow_into_a_deny() {
    let pdp = pdp();
    // Without the Tenant entity, `principal.tenant.suspended` cannot be evaluated. Cedar
    // would skip that forbid and allow (role-viewer permits); Gatehouse denies.
    let without_tenants: Vec<Entity> = fixture(&pdp)
        .into_iter()
        .filter(|e| e.uid().type_name().basename() != "Tenant")
        .collect();
    let schema = pdp.bundle().snapshot().schema().clone();
    let store = MemoryStore::new(
        &Entities::from_entities(without_tenants, None).unwrap(),
        &schema,
    )
    .unwrap();
    let d = ask(
        &pdp,
        &store,
        r#"User::"acme-vera""#,
        "document:read",
        r#"Document::"acme-plan""#,
    );
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.determining_policies.is_empty());
    assert!(
        matches!(&d.errors[..], [DecisionError::PolicyEvaluation { policy, .. }] if policy == "tenant-suspended"),
        "{:?}",
        d.errors
    );
}

#[test]
fn an_agent_is_allowed_only_when_it_and_its_user_are() {
    let pdp = pdp();
    let store = store(&pdp);
    // The writer bot has edit; its user (a viewer) holds an editor share on the roadmap only.
    let allowed = ask(
        &pdp,
        &store,
        r#"Agent::"acme-bot-writer""#,
        "document:write",
        r#"Document::"acme-roadmap""#,
    );
    assert_eq!(allowed.effect, Effect::Allow);
    let legs = allowed.delegation.as_ref().unwrap();
    assert_eq!(
        (legs.agent.effect, legs.user.effect),
        (Effect::Allow, Effect::Allow)
    );
    assert_eq!(legs.agent.determining_policies, ["agent-edit"]);
    assert_eq!(legs.user.principal, r#"User::"acme-vera""#);
    assert_eq!(legs.user.determining_policies, ["grant-editor"]);

    let denied = ask(
        &pdp,
        &store,
        r#"Agent::"acme-bot-writer""#,
        "document:write",
        r#"Document::"acme-plan""#,
    );
    assert_eq!(denied.effect, Effect::Deny);
    let legs = denied.delegation.as_ref().unwrap();
    assert_eq!(
        (legs.agent.effect, legs.user.effect),
        (Effect::Allow, Effect::Deny)
    );
}

#[test]
fn an_agent_credential_naming_another_user_is_refused() {
    let pdp = pdp();
    let store = store(&pdp);
    let mut r = request(
        "acme",
        r#"Agent::"acme-bot-reader""#,
        "document:read",
        r#"Document::"acme-public""#,
    );
    r.acting_for = Some(r#"User::"acme-ed""#.parse().unwrap());
    assert_eq!(
        decide(&pdp, &store, &r).effect,
        Effect::Allow,
        "acme-bot-reader acts for acme-ed"
    );
    r.acting_for = Some(r#"User::"acme-ada""#.parse().unwrap());
    let d = decide(&pdp, &store, &r);
    assert_eq!(
        (d.effect, d.errors[0].code()),
        (Effect::Deny, "delegation_mismatch")
    );
}

#[test]
fn the_delegation_context_comes_from_the_decision_point_not_the_caller() {
    let pdp = pdp();
    let store = store(&pdp);
    let mut r = request(
        "acme",
        r#"User::"acme-vera""#,
        "document:read",
        r#"Document::"acme-plan""#,
    );
    r.context
        .insert("delegation".into(), json!("forged by the caller"));
    let d = decide(&pdp, &store, &r);
    assert_eq!(d.effect, Effect::Allow, "{:?}", d.errors);
}

#[test]
fn decisions_record_the_bundle_that_made_them_across_a_reload() {
    let pdp = pdp();
    let store = store(&pdp);
    let r = request(
        "acme",
        r#"User::"acme-vera""#,
        "document:read",
        r#"Document::"acme-plan""#,
    );
    let before = decide(&pdp, &store, &r);

    let (_tmp, dir) = scratch_bundle();
    let manifest = dir.join("bundle.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("version = \"1.0.0\"", "version = \"1.0.1\"");
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(
        dir.join("90-freeze.cedar"),
        "@id(\"read-freeze\")\n@purpose(\"nobody reads during the incident\")\nforbid (principal, action == Action::\"document:read\", resource);\n",
    )
    .unwrap();
    pdp.bundle().reload(&dir).unwrap();

    let after = decide(&pdp, &store, &r);
    assert_eq!(&*before.bundle.version, "1.0.0");
    assert_eq!(&*after.bundle.version, "1.0.1");
    assert_eq!(
        (after.effect, after.determining_policies.as_slice()),
        (Effect::Deny, &["read-freeze".to_string()][..])
    );
}
