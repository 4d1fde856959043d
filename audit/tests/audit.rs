//! The audit log against a real PostgreSQL.

use std::time::Duration;

use gatehouse_audit::{
    AuditQuery, AuditRecord, AuditStore, AuditWorker, AuditWriter, Durability, NotDurable,
    SpoolOptions, Spooler, WriterConfig,
};
use gatehouse_core::TenantId;
use gatehouse_pgcluster::PgCluster;
use gatehouse_schemas::migrate;
use sqlx::postgres::PgPoolOptions;

struct Db {
    cluster: PgCluster,
    _dir: tempfile::TempDir,
    owner: sqlx::PgPool,
    app: sqlx::PgPool,
}

async fn db() -> Db {
    let dir = gatehouse_pgcluster::scratch_dir().unwrap();
    let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
    let urls = cluster.provision("gatehouse").unwrap();
    let connect = |url: String| async move {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_millis(500))
            .connect(&url)
            .await
            .unwrap()
    };
    let owner = connect(urls.owner_url).await;
    migrate(&owner).await.unwrap();
    migrate(&owner).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('acme', 'Acme', 'pro', 'eu'), ('globex', 'Globex', 'free', 'us')",
    )
    .execute(&owner)
    .await
    .unwrap();
    let app = connect(urls.app_url).await;
    Db {
        cluster,
        _dir: dir,
        owner,
        app,
    }
}

fn record(tenant: &str, n: u32, decision: &str) -> AuditRecord {
    AuditRecord {
        id: format!("01a209a6-9488-78ed-b0b8-{n:012x}"),
        time_us: 1_795_000_000_000_000 + i64::from(n),
        trace_id: format!("{n:032x}"),
        tenant: TenantId::parse(tenant).unwrap(),
        principal: format!(r#"User::"{tenant}-u{}""#, n % 3),
        acting_for: None,
        action: r#"Action::"document:read""#.into(),
        resource: format!(r#"Document::"{tenant}-d{n}""#),
        decision: decision.into(),
        determining_policies: if decision == "allow" {
            vec!["role-viewer".into()]
        } else {
            vec![]
        },
        errors: vec![],
        bundle_version: "1.0.0".into(),
        bundle_hash: "sha256:00".into(),
        latency_us: 20,
        client_ip: Some("127.0.0.1".into()),
        route: "/documents/{id}".into(),
        asked_by: None,
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

#[tokio::test]
async fn records_chain_per_tenant_and_replays_are_not_written_twice() {
    let db = db().await;
    let store = AuditStore::new(db.app.clone());
    let batch: Vec<AuditRecord> = (1..=5)
        .map(|n| record("acme", n, "allow"))
        .chain([record("globex", 9, "deny")])
        .collect();
    assert_eq!(store.append(&batch).await.unwrap(), 6);
    assert_eq!(
        store.append(&batch).await.unwrap(),
        0,
        "the same ids again write nothing"
    );
    let partly_stored = [record("acme", 5, "allow"), record("acme", 6, "deny")];
    assert_eq!(
        store.append(&partly_stored).await.unwrap(),
        1,
        "a replay that overlaps the log writes only what is new"
    );
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!((report.records, report.broken), (6, None));
    let all = store.query(&AuditQuery::tenant(acme())).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(store.tenants().await.unwrap().len(), 2);
}

#[tokio::test]
async fn queries_filter_by_every_field_and_stay_in_their_tenant() {
    let db = db().await;
    let store = AuditStore::new(db.app.clone());
    let batch: Vec<AuditRecord> = (1..=9)
        .map(|n| record("acme", n, if n % 2 == 0 { "deny" } else { "allow" }))
        .chain((1..=3).map(|n| record("globex", 100 + n, "allow")))
        .collect();
    store.append(&batch).await.unwrap();
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut query = AuditQuery::tenant(acme());
        f(&mut query);
        query
    };
    let count = |query: AuditQuery| {
        let store = store.clone();
        async move { store.query(&query).await.unwrap().len() }
    };
    assert_eq!(count(q(&|_| {})).await, 9, "globex's records never show");
    assert_eq!(count(q(&|q| q.decision = Some("deny".into()))).await, 4);
    assert_eq!(
        count(q(&|q| q.policy = Some("role-viewer".into()))).await,
        5
    );
    assert_eq!(
        count(q(&|q| q.principal = Some(r#"User::"acme-u1""#.into()))).await,
        3
    );
    assert_eq!(
        count(q(&|q| q.resource = Some(r#"Document::"acme-d4""#.into()))).await,
        1
    );
    assert_eq!(
        count(q(
            &|q| q.action = Some(r#"Action::"document:delete""#.into())
        ))
        .await,
        0
    );
    assert_eq!(
        count(q(&|q| {
            q.since_us = Some(1_795_000_000_000_003);
            q.until_us = Some(1_795_000_000_000_006);
        }))
        .await,
        3
    );
    assert_eq!(count(q(&|q| q.limit = 2)).await, 2);
}

#[tokio::test]
async fn the_application_role_cannot_change_history_and_tampering_is_detected() {
    let db = db().await;
    let store = AuditStore::new(db.app.clone());
    store
        .append(
            &(1..=4)
                .map(|n| record("acme", n, "allow"))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&db.app)
        .await
        .unwrap();
    assert_eq!(
        unscoped, 0,
        "row-level security: with no tenant set, no record is visible"
    );
    for statement in [
        "UPDATE audit_log SET decision = 'deny'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::raw_sql(statement)
            .execute(&db.app)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "app: {statement}: {err}");
        // The owner, with the tenant set (row-level security is forced on it too).
        let scoped = format!("SET app.tenant_id = 'acme'; {statement}");
        let err = sqlx::raw_sql(&scoped)
            .execute(&db.owner)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "owner: {statement}: {err}");
    }
    // A superuser can bypass the triggers; the chain still tells.
    db.cluster
        .execute(
            "gatehouse",
            "SET session_replication_role = replica; \
             UPDATE audit_log SET decision = 'deny', canonical = replace(canonical, '\"allow\"', '\"deny\"') WHERE seq = 3",
        )
        .unwrap();
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!(report.broken.as_ref().map(|b| b.0), Some(3), "{report:?}");
    db.cluster
        .execute(
            "gatehouse",
            "SET session_replication_role = replica; DELETE FROM audit_log WHERE seq = 2",
        )
        .unwrap();
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!(
        report.broken.as_ref().map(|b| b.0),
        Some(3),
        "a gap: {report:?}"
    );
}

fn writer_config() -> WriterConfig {
    WriterConfig {
        batch_max: 10,
        flush_every: Duration::from_millis(20),
        write_timeout: Duration::from_millis(300),
        checkpoints: None,
        checkpoint_every: Duration::from_secs(10),
    }
}

/// A spooler on `spool` and a worker writing to `db`, running until `Running::stop`.
struct Running {
    writer: AuditWriter,
    spooler: Spooler,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(db: &Db, spool: &std::path::Path, memory_max: usize) -> Running {
    start_with(db, spool, options(Durability::Sync, memory_max))
}

fn options(durability: Durability, memory_max: usize) -> SpoolOptions {
    SpoolOptions {
        durability,
        memory_max,
        ..SpoolOptions::default()
    }
}

fn start_with(db: &Db, spool: &std::path::Path, options: SpoolOptions) -> Running {
    let (writer, spooler, spooled) = Spooler::start(spool, options).unwrap();
    let worker = AuditWorker::new(spooled, AuditStore::new(db.app.clone()), writer_config());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(stopped));
    Running {
        writer,
        spooler,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.spooler.stop();
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn records_survive_a_database_outage_through_the_spool() {
    survive_an_outage(1_000).await;
}

#[tokio::test]
async fn a_backlog_larger_than_memory_is_read_back_from_the_spool_a_window_at_a_time() {
    survive_an_outage(7).await;
}

async fn survive_an_outage(memory_max: usize) {
    let db = db().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("audit.spool");
    let running = start(&db, &spool, memory_max);
    let writer = running.writer.clone();

    for n in 1..=20 {
        assert!(writer.record(record("acme", n, "allow")));
    }
    wait_for(&db.app, 20).await;

    db.cluster.stop().unwrap();
    for n in 21..=50 {
        writer.record(record("acme", n, "deny"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut spooled = 0;
    for _ in 0..200 {
        spooled = spooled_lines(&spool).len();
        if spooled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(spooled > 0, "with PostgreSQL down, records go to the spool");

    db.cluster.restart().unwrap();
    for n in 51..=60 {
        writer.record(record("acme", n, "allow"));
    }
    wait_for(&db.app, 60).await;
    running.stop().await;

    let store = AuditStore::new(db.app.clone());
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!(
        (report.records, report.broken),
        (60, None),
        "none lost, none twice, chain intact"
    );
    let ids = acme_ids(&store).await;
    let expected: Vec<String> = (1..=60).map(|n| record("acme", n, "allow").id).collect();
    assert_eq!(ids, expected, "in the order they were decided");
    assert!(!spool.exists(), "the spool is emptied after the replay");
}

#[tokio::test]
async fn a_line_torn_by_a_crash_does_not_swallow_the_next_record() {
    let db = db().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("audit.spool");
    let left = [record("acme", 1, "allow"), record("acme", 2, "allow")];
    let mut text: String = left.iter().map(|r| r.canonical() + "\n").collect();
    let torn = record("acme", 3, "allow").canonical();
    text.push_str(&torn[..torn.len() / 2]);
    std::fs::write(&spool, text).unwrap();

    let running = start(&db, &spool, 1_000);
    for n in 4..=5 {
        running.writer.record(record("acme", n, "deny"));
    }
    wait_for(&db.app, 4).await;
    running.stop().await;

    let ids = acme_ids(&AuditStore::new(db.app.clone())).await;
    let expected: Vec<String> = [1, 2, 4, 5].map(|n| record("acme", n, "allow").id).into();
    assert_eq!(
        ids, expected,
        "the torn record is passed over, the next one kept"
    );
    assert!(!spool.exists());
}

#[tokio::test]
async fn a_receipt_is_answered_once_the_records_are_in_the_synced_spool_not_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.spool");
    // No database writer at all: durability is the spool's alone.
    let (writer, spooler, _spooled) =
        Spooler::start(&spool, options(Durability::Sync, 100)).unwrap();
    for n in 1..=3 {
        writer.record(record("acme", n, "allow"));
    }
    writer.barrier().wait().await.unwrap();
    let spooled = spooled_lines(&spool);
    let expected: Vec<String> = (1..=3)
        .map(|n| record("acme", n, "allow").canonical())
        .collect();
    assert_eq!(
        spooled, expected,
        "every record before the barrier, in order"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    spooler.stop();
    assert_eq!(
        writer.barrier().wait().await,
        Err(NotDurable),
        "with the spooler gone, nothing is durable"
    );
}

#[tokio::test]
async fn a_spool_that_cannot_be_written_fails_every_receipt_and_keeps_the_records() {
    // /dev/full takes the open and fails every write with ENOSPC, as a full disk does.
    let (writer, spooler, _spooled) = Spooler::start(
        std::path::Path::new("/dev/full"),
        options(Durability::Sync, 100),
    )
    .unwrap();
    writer.record(record("acme", 1, "allow"));
    assert_eq!(writer.barrier().wait().await, Err(NotDurable));
    writer.record(record("acme", 2, "allow"));
    assert_eq!(
        writer.barrier().wait().await,
        Err(NotDurable),
        "a record that could not be spooled holds up every later receipt"
    );
    spooler.stop();

    let (writer, spooler, _spooled) = Spooler::start(
        std::path::Path::new("/dev/full"),
        options(Durability::Async, 100),
    )
    .unwrap();
    writer.record(record("acme", 3, "allow"));
    assert_eq!(
        writer.barrier().wait().await,
        Ok(()),
        "async durability does not wait (and so cannot refuse)"
    );
    spooler.stop();
}

#[tokio::test]
async fn a_stalled_database_holds_up_neither_the_spool_nor_its_receipts() {
    let db = db().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("audit.spool");
    let running = start(&db, &spool, 5);
    for n in 1..=5 {
        running.writer.record(record("acme", n, "allow"));
    }
    wait_for(&db.app, 5).await;

    // Someone holds acme's chain lock: every write of the writer waits on it, then times out.
    let mut holder = db.owner.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('acme', 7425))")
        .execute(&mut *holder)
        .await
        .unwrap();
    // The lock is released only after this: a receipt waiting on the database would
    // never come (the timeout turns that hang into a failure).
    let spooling = async {
        for n in 6..=60 {
            running.writer.record(record("acme", n, "allow"));
            if n % 10 == 0 {
                running.writer.barrier().wait().await.unwrap();
            }
        }
        running.writer.barrier().wait().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), spooling)
        .await
        .expect("receipts are answered while the database is stuck");
    let spooled = spooled_lines(&spool).len();
    assert!(spooled >= 55, "the spool took every record: {spooled}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&db.app).await, Some(5), "nothing got past the lock");

    holder.rollback().await.unwrap();
    wait_for(&db.app, 60).await;
    running.stop().await;
    let store = AuditStore::new(db.app.clone());
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!((report.records, report.broken), (60, None));
    let expected: Vec<String> = (1..=60).map(|n| record("acme", n, "allow").id).collect();
    assert_eq!(acme_ids(&store).await, expected, "once each, in order");
    assert!(!spool.exists());
}

#[tokio::test]
async fn under_load_that_never_pauses_the_spool_is_sealed_in_segments_and_each_removed_once_stored()
{
    let db = db().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("audit.spool");
    // Segments of about ten records.
    let running = start_with(
        &db,
        &spool,
        SpoolOptions {
            segment_bytes: 4_096,
            ..options(Durability::Sync, 1_000)
        },
    );
    // Records every millisecond or so, slower than the writer stores them but never
    // pausing long enough for it to find the spool without new lines.
    let mut most_bytes = 0;
    for n in 1..=1_000 {
        running.writer.record(record("acme", n, "allow"));
        if n % 5 == 0 {
            running.writer.barrier().wait().await.unwrap();
            most_bytes = most_bytes.max(spool_bytes(spool_dir.path()));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    wait_for(&db.app, 1_000).await;
    running.stop().await;
    let store = AuditStore::new(db.app.clone());
    let expected: Vec<String> = (1..=1_000).map(|n| record("acme", n, "allow").id).collect();
    assert_eq!(acme_ids(&store).await, expected, "once each, in order");
    assert_eq!(store.verify(&acme()).await.unwrap().broken, None);
    let all_bytes: usize = (1..=1_000)
        .map(|n| record("acme", n, "allow").canonical().len() + 1)
        .sum();
    assert!(
        most_bytes < all_bytes / 4,
        "stored segments are removed while the load goes on: the spool reached {most_bytes} of {all_bytes} bytes"
    );
    assert_eq!(spool_files(spool_dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn segments_an_earlier_process_left_are_written_first_in_order() {
    let db = db().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("audit.spool");
    let lines = |range: std::ops::RangeInclusive<u32>| -> String {
        range
            .map(|n| record("acme", n, "allow").canonical() + "\n")
            .collect()
    };
    std::fs::write(spool_dir.path().join("audit.spool.3"), lines(1..=4)).unwrap();
    std::fs::write(spool_dir.path().join("audit.spool.12"), lines(5..=6)).unwrap();
    std::fs::write(&spool, lines(7..=8)).unwrap();
    let running = start(&db, &spool, 1_000);
    for n in 9..=10 {
        running.writer.record(record("acme", n, "allow"));
    }
    wait_for(&db.app, 10).await;
    running.stop().await;
    let expected: Vec<String> = (1..=10).map(|n| record("acme", n, "allow").id).collect();
    assert_eq!(
        acme_ids(&AuditStore::new(db.app.clone())).await,
        expected,
        "sealed segments by number, then the active one, then what came since"
    );
    assert_eq!(spool_files(spool_dir.path()), Vec::<String>::new());
}

/// The size of the spool's files in `dir`, together.
fn spool_bytes(dir: &std::path::Path) -> usize {
    spool_files(dir)
        .iter()
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|m| m.len() as usize)
        .sum()
}

/// The spool's files in `dir`.
fn spool_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("audit.spool"))
        .collect();
    names.sort();
    names
}

/// The ids of acme's stored records, oldest first.
async fn acme_ids(store: &AuditStore) -> Vec<String> {
    let records = store.query(&AuditQuery::tenant(acme())).await.unwrap();
    records.into_iter().map(|r| r.record.id).collect()
}

/// How many records acme's log holds; `None` when the database does not answer.
async fn count(pool: &sqlx::PgPool) -> Option<i64> {
    let count: Result<i64, sqlx::Error> = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
            .execute(&mut *tx)
            .await?;
        sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(&mut *tx)
            .await
    }
    .await;
    count.ok()
}

async fn wait_for(pool: &sqlx::PgPool, n: i64) {
    for _ in 0..300 {
        if count(pool).await == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit log never reached {n} records");
}

/// Rewrites acme's record `seq` as a deny and recomputes every hash after it, as a
/// database superuser could: the chain alone then looks intact.
const REWRITE_AND_RECHAIN: &str = "SET session_replication_role = replica; \
    DO $$ DECLARE r record; prev bytea; BEGIN \
      UPDATE audit_log SET decision = 'deny', canonical = replace(canonical, '\"allow\"', '\"deny\"') WHERE tenant_id = 'acme' AND seq = 3; \
      SELECT hash INTO prev FROM audit_log WHERE tenant_id = 'acme' AND seq = 2; \
      FOR r IN SELECT seq, canonical FROM audit_log WHERE tenant_id = 'acme' AND seq >= 3 ORDER BY seq LOOP \
        UPDATE audit_log SET prev_hash = prev, hash = sha256(prev || convert_to(r.canonical, 'UTF8')) WHERE tenant_id = 'acme' AND seq = r.seq; \
        SELECT hash INTO prev FROM audit_log WHERE tenant_id = 'acme' AND seq = r.seq; \
      END LOOP; END $$";

#[tokio::test]
async fn signed_checkpoints_expose_a_superusers_rewrite_and_truncation() {
    use gatehouse_audit::checkpoint::{CheckpointSigner, read_checkpoints};

    let db = db().await;
    let store = AuditStore::new(db.app.clone());
    let records: Vec<AuditRecord> = (1..=6).map(|n| record("acme", n, "allow")).collect();
    store.append(&records).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoints.jsonl");
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let public = key.verifying_key();
    let signer = CheckpointSigner::new(key, file.clone());
    let (seq, hash) = store.head(&acme()).await.unwrap().unwrap();
    assert_eq!(seq, 6);
    signer
        .append(&[signer.sign(&acme(), seq, &hash, 1)])
        .unwrap();
    let checkpoints = read_checkpoints(&file).unwrap();
    assert_eq!(
        store
            .verify_checkpoints(&acme(), &checkpoints, &public)
            .await
            .unwrap(),
        None
    );

    // A forged checkpoint (another key) is refused.
    let forger = CheckpointSigner::new(
        ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
        file.clone(),
    );
    let forged = vec![forger.sign(&acme(), seq, &hash, 2)];
    assert!(
        store
            .verify_checkpoints(&acme(), &forged, &public)
            .await
            .unwrap()
            .is_some()
    );

    // Rewritten with every hash recomputed: the chain verifies, the checkpoint does not.
    db.cluster
        .execute("gatehouse", REWRITE_AND_RECHAIN)
        .unwrap();
    assert_eq!(
        store.verify(&acme()).await.unwrap().broken,
        None,
        "the chain alone is fooled"
    );
    let found = store
        .verify_checkpoints(&acme(), &checkpoints, &public)
        .await
        .unwrap();
    assert_eq!(found.as_ref().map(|f| f.0), Some(6), "{found:?}");

    // The newest records removed: the chain's prefix verifies, the checkpoint misses them.
    db.cluster
        .execute(
            "gatehouse",
            "SET session_replication_role = replica; DELETE FROM audit_log WHERE seq >= 5",
        )
        .unwrap();
    assert_eq!(store.verify(&acme()).await.unwrap().broken, None);
    let found = store
        .verify_checkpoints(&acme(), &checkpoints, &public)
        .await
        .unwrap();
    assert_eq!(
        found.map(|f| f.1),
        Some("a checkpointed record is missing".to_string())
    );
}

#[tokio::test]
async fn records_from_before_the_policies_column_are_still_found_by_policy_and_verify() {
    let dir = gatehouse_pgcluster::scratch_dir().unwrap();
    let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
    let urls = cluster.provision("gatehouse").unwrap();
    let owner = PgPoolOptions::new().connect(&urls.owner_url).await.unwrap();
    gatehouse_schemas::migrate_to(&owner, 9).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('acme', 'Acme', 'pro', 'eu')",
    )
    .execute(&owner)
    .await
    .unwrap();
    // A row as the writer before migration 10 wrote it: the whole record as jsonb.
    let old = record("acme", 1, "allow");
    let canonical = old.canonical();
    let hash = gatehouse_audit::chain_hash(&gatehouse_audit::GENESIS_HASH, &canonical);
    let mut tx = gatehouse_schemas::tenant_tx(&owner, &acme()).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, id, time_us, trace_id, principal, action, resource, decision, record, canonical, prev_hash, hash) \
         VALUES ('acme', 1, $1::uuid, $2, $3, $4, $5, $6, $7, $8::jsonb, $8, $9, $10)",
    )
    .bind(&old.id)
    .bind(old.time_us)
    .bind(&old.trace_id)
    .bind(&old.principal)
    .bind(&old.action)
    .bind(&old.resource)
    .bind(&old.decision)
    .bind(&canonical)
    .bind(gatehouse_audit::GENESIS_HASH.to_vec())
    .bind(hash.to_vec())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    gatehouse_schemas::migrate(&owner).await.unwrap();
    let app = PgPoolOptions::new().connect(&urls.app_url).await.unwrap();
    let store = AuditStore::new(app);
    store
        .append(&[record("acme", 2, "allow"), record("acme", 3, "deny")])
        .await
        .unwrap();
    let mut query = AuditQuery::tenant(acme());
    query.policy = Some("role-viewer".into());
    let found: Vec<i64> = store
        .query(&query)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        found,
        [1, 2],
        "the old row by its jsonb, the new one by its array"
    );
    let report = store.verify(&acme()).await.unwrap();
    assert_eq!((report.records, report.broken), (3, None));
    drop(cluster);
}

/// The lines of the spool's active segment, up to the zeros ahead of its records.
fn spooled_lines(spool: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(spool).unwrap_or_default();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::to_string)
        .collect()
}
