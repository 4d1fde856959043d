//! Every decision is audited: exactly once, in a valid chain, through a PostgreSQL outage.

mod common;

use common::{DatabaseMode, Gateway, free_port};
use reqwest::Method;

#[test]
fn every_decision_is_audited_once_in_a_valid_chain() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let (allowed, _) = gw.get("/documents/acme-plan", &vera);
    let (denied, body) = gw.call(Method::DELETE, "/documents/acme-plan", &vera, &[]);
    assert_eq!((allowed, denied), (200, 403));
    let (_, _) = gw.get("/search", &gw.token("acme-ed", "acme"));
    // A tenant mismatch is on the record of both tenants.
    let (mismatch, _) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        &vera,
        &[("host", "globex.gatehouse.test")],
    );
    assert_eq!(mismatch, 403);

    let records = gw.audit_when("acme", 4);
    assert_eq!(records.len(), 4, "{records:#?}");
    let deny = records
        .iter()
        .find(|r| r.record.action.contains("document:delete"))
        .unwrap();
    assert_eq!(deny.record.decision, "deny");
    assert_eq!(
        deny.record.id,
        body["error"]["decision_id"].as_str().unwrap()
    );
    assert_eq!(deny.record.principal, r#"User::"acme-vera""#);
    assert_eq!(deny.record.route, "/documents/{id}");
    assert!(deny.record.bundle_hash.starts_with("sha256:"));
    let allow = records
        .iter()
        .find(|r| r.record.action.contains("document:read"))
        .unwrap();
    assert_eq!(allow.record.determining_policies, ["role-viewer"]);
    assert_eq!(gw.audit_when("globex", 1).len(), 1);
    assert_eq!(
        gw.audit_when("globex", 1)[0].record.errors,
        ["tenant_mismatch"]
    );

    let report = gw.verify("acme");
    assert_eq!((report.records, report.broken), (4, None));
}

#[test]
fn no_audit_record_is_lost_while_postgres_is_down() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    for _ in 0..5 {
        assert_eq!(gw.get("/documents/acme-plan", &vera).0, 200);
    }
    assert_eq!(gw.audit_when("acme", 5).len(), 5);

    let postgres = gw.postgres.as_ref().unwrap();
    postgres.stop().unwrap();
    for _ in 0..10 {
        assert_eq!(
            gw.get("/documents/acme-plan", &vera).0,
            200,
            "decisions go on without the audit database"
        );
        assert_eq!(
            gw.call(Method::DELETE, "/documents/acme-plan", &vera, &[])
                .0,
            403
        );
    }
    postgres.restart().unwrap();
    for _ in 0..5 {
        assert_eq!(gw.get("/documents/acme-plan", &vera).0, 200);
    }
    let records = gw.audit_when("acme", 30);
    assert_eq!(records.len(), 30, "every decision, none twice");
    let mut ids: Vec<&str> = records.iter().map(|r| r.record.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    assert_eq!(gw.verify("acme").broken, None);
}

#[test]
fn without_a_database_url_the_gateway_runs_its_own_postgres() {
    let gw = Gateway::start_with(DatabaseMode::Embedded(free_port()));
    let (status, _) = gw.get("/documents/acme-plan", &gw.token("acme-vera", "acme"));
    assert_eq!(status, 200);
    let records = gw.audit_when("acme", 1);
    assert_eq!(records.len(), 1);
    assert_eq!(gw.verify("acme").broken, None);
}
