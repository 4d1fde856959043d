//! `platformctl audit` against a real PostgreSQL.

use std::process::{Command, Output};

use gatehouse_audit::{AuditRecord, AuditStore};
use gatehouse_core::TenantId;
use gatehouse_pgcluster::PgCluster;
use gatehouse_schemas::migrate;

fn platformctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(args)
        .output()
        .unwrap()
}

fn record(n: u32, decision: &str) -> AuditRecord {
    AuditRecord {
        id: format!("01a209a6-9488-78ed-b0b8-{n:012x}"),
        time_us: 1_795_000_000_000_000 + i64::from(n) * 1_000_000,
        trace_id: format!("{n:032x}"),
        tenant: TenantId::parse("acme").unwrap(),
        principal: r#"User::"acme-vera""#.into(),
        acting_for: None,
        action: r#"Action::"document:read""#.into(),
        resource: format!(r#"Document::"acme-d{n}""#),
        decision: decision.into(),
        determining_policies: vec!["role-viewer".into()],
        errors: vec![],
        bundle_version: "1.0.0".into(),
        bundle_hash: "sha256:00".into(),
        latency_us: 20,
        client_ip: None,
        route: "/documents/{id}".into(),
        asked_by: None,
    }
}

/// A private PostgreSQL with the audit log of tenant `acme`: records 1 (allow), 2 (deny)
/// and 3 (allow).
struct AuditLog {
    dir: tempfile::TempDir,
    cluster: PgCluster,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl AuditLog {
    fn start() -> Self {
        let dir = gatehouse_pgcluster::scratch_dir().unwrap();
        let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
        let urls = cluster.provision("gatehouse").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let owner = sqlx::PgPool::connect(&urls.owner_url).await.unwrap();
            migrate(&owner).await.unwrap();
            sqlx::raw_sql("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('acme', 'Acme', 'pro', 'eu')")
                .execute(&owner)
                .await
                .unwrap();
            let app = sqlx::PgPool::connect(&urls.app_url).await.unwrap();
            let records = [record(1, "allow"), record(2, "deny"), record(3, "allow")];
            AuditStore::new(app).append(&records).await.unwrap();
        });
        Self {
            dir,
            cluster,
            url: urls.app_url,
            runtime,
        }
    }
}

#[test]
fn query_filters_and_verify_detects_tampering() {
    let log = AuditLog::start();
    let (cluster, url) = (&log.cluster, log.url.as_str());
    let query = |extra: &[&str]| {
        let mut args = vec!["audit", "query", "--database-url", url, "--tenant", "acme"];
        args.extend_from_slice(extra);
        platformctl(&args)
    };

    let out = query(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let out = query(&["--decision", "deny"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(table.lines().count(), 2, "a header and one row: {table}");
    assert!(table.contains(r#"Document::"acme-d2""#), "{table}");
    let out = query(&[
        "--since",
        "1795000002",
        "--action",
        "document:read",
        "--json",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    let out = platformctl(&["audit", "verify", "--database-url", url]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme: 3 records, chain intact"));

    cluster
        .execute("gatehouse", "SET session_replication_role = replica; UPDATE audit_log SET principal = 'User::\"someone-else\"' WHERE seq = 2")
        .unwrap();
    let out = platformctl(&["audit", "verify", "--database-url", url, "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme: BROKEN at seq 2"));

    let unreachable = "postgres://gatehouse_app@127.0.0.1:1/gatehouse";
    assert_eq!(
        platformctl(&["audit", "verify", "--database-url", unreachable])
            .status
            .code(),
        Some(4)
    );
}

#[test]
fn verify_with_signed_checkpoints_catches_what_the_chain_alone_cannot() {
    use gatehouse_audit::checkpoint::CheckpointSigner;

    let log = AuditLog::start();
    let (cluster, url) = (&log.cluster, log.url.as_str());
    let key_file = log.dir.path().join("audit-checkpoint.pem");
    let checkpoints = log.dir.path().join("audit-checkpoints.jsonl");
    let signer = CheckpointSigner::load_or_create(&key_file, checkpoints.clone()).unwrap();
    log.runtime.block_on(async {
        let store = AuditStore::new(sqlx::PgPool::connect(url).await.unwrap());
        let acme = TenantId::parse("acme").unwrap();
        let (seq, hash) = store.head(&acme).await.unwrap().unwrap();
        signer.append(&[signer.sign(&acme, seq, &hash, 1)]).unwrap();
    });
    let public = format!("{}.pub", key_file.display());
    let checkpoints = checkpoints.display().to_string();
    let verify = |key: &str| {
        platformctl(&[
            "audit",
            "verify",
            "--database-url",
            url,
            "--tenant",
            "acme",
            "--checkpoints",
            &checkpoints,
            "--checkpoint-key",
            key,
        ])
    };

    let out = verify(&public);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("matching its signed checkpoints"));

    // The newest record removed by a superuser: the rest of the chain is intact...
    cluster
        .execute(
            "gatehouse",
            "SET session_replication_role = replica; DELETE FROM audit_log WHERE seq = 3",
        )
        .unwrap();
    let chain_only = platformctl(&["audit", "verify", "--database-url", url, "--tenant", "acme"]);
    assert_eq!(chain_only.status.code(), Some(0));
    // ...but not what was signed.
    let out = verify(&public);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme: BROKEN at seq 3"));

    // A key that is not a public key is a usage error.
    assert_eq!(verify(&checkpoints).status.code(), Some(2));
}
