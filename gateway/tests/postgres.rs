//! The gateway with PostgreSQL: every decision audited exactly once in a valid chain, through
//! an outage; entities under row-level security, cached, invalidated on change; fail closed.

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

    // The gateway signed a checkpoint of acme's chain beside its spool, and it matches.
    let file = gw.dir.path().join("audit-checkpoints.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let checkpoints = loop {
        let found = gatehouse_audit::checkpoint::read_checkpoints(&file).unwrap();
        if found.iter().any(|c| c.tenant.as_str() == "acme") || std::time::Instant::now() > deadline
        {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let public = std::fs::read_to_string(gw.dir.path().join("audit-checkpoint.pem.pub")).unwrap();
    let key = gatehouse_audit::checkpoint::verifying_key(&public).unwrap();
    assert!(
        checkpoints
            .iter()
            .any(|c| c.tenant.as_str() == "acme" && c.is_signed_by(&key))
    );
    let acme = gatehouse_core::TenantId::parse("acme").unwrap();
    let mismatch = gw.with_store(|store| async move {
        store
            .verify_checkpoints(&acme, &checkpoints, &key)
            .await
            .unwrap()
    });
    assert_eq!(mismatch, None);
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
    // Entities live in the same PostgreSQL: a decision is made from the cache, or the
    // request fails closed with 503. Either way it is a decision, and it is audited.
    for _ in 0..10 {
        let read = gw.get("/documents/acme-plan", &vera).0;
        assert!(read == 200 || read == 503, "{read}");
        let delete = gw
            .call(Method::DELETE, "/documents/acme-plan", &vera, &[])
            .0;
        assert!(delete == 403 || delete == 503, "{delete}");
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

#[test]
fn entities_live_in_postgres_under_row_level_security() {
    let gw = Gateway::start();
    let postgres = gw.postgres.as_ref().unwrap();
    let count = |tenant: &str, sql: &str| -> i64 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&gw.app_url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap()
        })
    };
    let global = count("", "SELECT count(*) FROM entities");
    assert_eq!(
        global, 7,
        "with no tenant set, only the global roles and capabilities"
    );
    assert_eq!(
        count(
            "acme",
            "SELECT count(*) FROM entities WHERE tenant_id = 'globex'"
        ),
        0
    );
    assert!(
        count(
            "acme",
            "SELECT count(*) FROM entities WHERE tenant_id = 'acme'"
        ) > 20
    );
    let _ = postgres;
}

#[test]
fn a_changed_entity_is_decided_with_its_new_data() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    assert_eq!(gw.get("/documents/acme-plan", &vera).0, 200);
    // Vera loses her viewer role: the cached entities must be dropped.
    gw.postgres
        .as_ref()
        .unwrap()
        .execute(
            "gatehouse",
            "SET app.tenant_id = 'acme'; UPDATE entities SET parents = '[]' WHERE entity_type = 'User' AND entity_id = 'acme-vera'",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if gw.get("/documents/acme-plan", &vera).0 == 403 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never reached the gateway:\n{}",
            gw.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn without_its_entity_store_the_gateway_answers_503() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    assert_eq!(gw.get("/documents/acme-plan", &vera).0, 200);
    assert_eq!(gw.get("/readyz", "").1["entity_store"], "up");
    gw.postgres.as_ref().unwrap().stop().unwrap();
    let (status, body) = gw.get("/documents/acme-public", &vera);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("decision_unavailable"))
    );
    let (status, body) = gw.get("/readyz", "");
    assert_eq!((status, body["ready"].as_bool()), (503, Some(false)));
    gw.postgres.as_ref().unwrap().restart().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.get("/documents/acme-public", &vera).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sigterm_shuts_down_gracefully_and_flushes_the_audit_log() {
    let mut gw = Gateway::start();
    for _ in 0..3 {
        assert_eq!(
            gw.get("/documents/acme-plan", &gw.token("acme-vera", "acme"))
                .0,
            200
        );
    }
    assert_eq!(gw.terminate(), Some(0), "a clean exit on SIGTERM");
    let records = gw.audit_when("acme", 3).len();
    let spool = std::fs::read_to_string(gw.dir.path().join("audit.spool")).unwrap_or_default();
    assert_eq!(
        records,
        3,
        "every record written before the exit; spool:\n{spool}\nlog:\n{}",
        gw.log()
    );
}

#[test]
fn check_config_validates_without_serving() {
    let gw = Gateway::start();
    let check = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--check-config")
            .arg("--config")
            .arg(path)
            .env("TEST_HS256_SECRET", common::HS256_SECRET)
            .output()
            .unwrap()
    };
    let ok = check(&gw.config_path());
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("configuration ok: bundle gatehouse-base")
    );
    let broken = gw.dir.path().join("broken.toml");
    let text = std::fs::read_to_string(gw.config_path())
        .unwrap()
        .replace("upstream = \"app\"", "upstream = \"nowhere\"");
    std::fs::write(&broken, text).unwrap();
    let bad = check(&broken);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown upstream"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_tenant_mismatch_is_recorded_only_in_tenants_that_exist_with_a_bounded_path() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let long_path = format!("/documents/{}", "x".repeat(8000));
    let (status, _) = gw.call(
        Method::GET,
        &long_path,
        &vera,
        &[("host", "nosuchtenant.gatehouse.test")],
    );
    assert_eq!(status, 403);
    let records = gw.audit_when("acme", 1);
    assert_eq!(records[0].record.errors, ["tenant_mismatch"]);
    assert!(records[0].record.route.len() <= 256, "the path is cut");
    assert!(
        gw.audit("nosuchtenant").is_empty(),
        "no chain for a tenant that does not exist"
    );
}
