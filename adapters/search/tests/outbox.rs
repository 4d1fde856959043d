//! The outbox against a real PostgreSQL (the migrations' triggers, row-level security, the
//! application role) and a real S3-protocol server: what a transaction commits reaches the
//! index and the object store, after a crash, through failures, and only for its tenant.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_adapter_blobs::{BlobStore, KeyRing, MasterKey, S3Settings, StoreError, sealed};
use gatehouse_adapter_search::outbox::{Contents, MAX_EXTRACTION_ATTEMPTS, Worker};
use gatehouse_adapter_search::sandbox::{Limits, Sandbox};
use gatehouse_adapter_search::{EmbeddedIndex, SearchIndex, SearchQuery};
use gatehouse_core::TenantId;
use gatehouse_pgcluster::PgCluster;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

struct World {
    dir: tempfile::TempDir,
    _cluster: PgCluster,
    owner: PgPool,
    app: PgPool,
    contents: Contents,
    index: Arc<EmbeddedIndex>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

async fn world() -> World {
    let dir = gatehouse_pgcluster::scratch_dir().unwrap();
    let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
    let urls = cluster.provision("gatehouse").unwrap();
    let owner = PgPoolOptions::new()
        .max_connections(2)
        .connect(&urls.owner_url)
        .await
        .unwrap();
    gatehouse_schemas::migrate(&owner).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('acme', 'Acme', 'pro', 'eu'), ('globex', 'Globex', 'pro', 'eu');",
    )
    .execute(&owner)
    .await
    .unwrap();
    let app = PgPoolOptions::new()
        .max_connections(4)
        .connect(&urls.app_url)
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let root = dir.path().join("s3");
    tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        gatehouse_adapter_blobs::local_s3::serve(&root, listener, "k", "s", stopped)
            .await
            .unwrap();
    });
    let store = BlobStore::new(&S3Settings {
        endpoint,
        region: "us-east-1".into(),
        bucket: "outbox-test".into(),
        access_key: "k".into(),
        secret_key: "s".into(),
    });
    store.ensure_bucket().await.unwrap();
    let contents = Contents {
        keys: KeyRing::new(MasterKey::from_bytes(&[7; 32]).unwrap(), app.clone()),
        store,
        extractor: Sandbox::new(
            env!("CARGO_BIN_EXE_gatehouse-extract"),
            &[],
            Limits {
                memory_bytes: 512 * 1024 * 1024,
                ..Limits::default()
            },
        ),
    };
    let index = Arc::new(EmbeddedIndex::new(dir.path().join("index")));
    World {
        dir,
        _cluster: cluster,
        owner,
        app,
        contents,
        index,
        _stop: stop,
    }
}

impl World {
    fn worker(&self) -> Worker {
        Worker::new(
            self.app.clone(),
            Arc::new(self.index.clone()),
            Some(self.contents.clone()),
        )
    }

    /// Runs SQL as the application role in `tenant`'s transaction, as the adapters do.
    async fn as_tenant(&self, tenant: &TenantId, sql: &str) {
        let mut tx = gatehouse_schemas::tenant_tx(&self.app, tenant)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn folder_and_documents(&self, tenant: &TenantId, names: &[(&str, &str)]) {
        let t = tenant.as_str();
        let mut sql = format!(
            "INSERT INTO folders (tenant_id, id, name, path, owner_id) VALUES ('{t}', 'root', 'Root', '/root/', 'alice'), ('{t}', 'sub', 'Sub', '/root/sub/', 'alice');"
        );
        for (id, name) in names {
            sql.push_str(&format!(
                "INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id, tags) VALUES ('{t}', '{id}', 'root', '/root/', '{name}', 'alice', '{{finance}}');\
                 INSERT INTO document_versions (tenant_id, document_id, version, created_by) VALUES ('{t}', '{id}', 1, 'alice');"
            ));
        }
        self.as_tenant(tenant, &sql).await;
    }

    /// Stores `text` as the document's next version, as the blob adapter does.
    async fn upload(&self, tenant: &TenantId, id: &str, text: &str) -> String {
        self.upload_as(tenant, id, text.as_bytes().to_vec(), "text/plain")
            .await
    }

    /// Stores `content` of `content_type` as the document's next version.
    async fn upload_as(
        &self,
        tenant: &TenantId,
        id: &str,
        content: Vec<u8>,
        content_type: &str,
    ) -> String {
        let object = format!(
            "tenants/{}/documents/{id}/{}",
            tenant.as_str(),
            rand_suffix()
        );
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(content))]);
        let stored = sealed::put(
            &self.contents.keys,
            &self.contents.store,
            tenant,
            &object,
            body,
            1 << 20,
        )
        .await
        .unwrap();
        let key_id = uuid_text(stored.key_id);
        self.as_tenant(
            tenant,
            &format!(
                "INSERT INTO document_versions (tenant_id, document_id, version, created_by, content_type, size_bytes, sha256, object_key, key_id) \
                 SELECT tenant_id, id, current_version + 1, 'alice', '{content_type}', {}, '{}', '{object}', '{key_id}' FROM documents WHERE tenant_id = '{t}' AND id = '{id}';\
                 UPDATE documents SET current_version = current_version + 1, updated_at = now() WHERE tenant_id = '{t}' AND id = '{id}';",
                stored.size,
                stored.sha256,
                t = tenant.as_str()
            ),
        )
        .await;
        object
    }

    async fn found(&self, tenant: &TenantId, words: &str) -> Vec<String> {
        let query = SearchQuery {
            text: words.into(),
            limit: 50,
            ..SearchQuery::default()
        };
        let mut ids: Vec<String> = self
            .index
            .search(tenant, &query)
            .await
            .unwrap()
            .hits
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    }

    /// How the extraction of the document's content went, and how often it was started.
    async fn extraction(&self, tenant: &TenantId, id: &str) -> (String, i32) {
        let mut tx = gatehouse_schemas::tenant_tx(&self.app, tenant)
            .await
            .unwrap();
        sqlx::query_as("SELECT status, attempts FROM document_texts WHERE document_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    }

    async fn pending(&self, tenant: &TenantId) -> i64 {
        let mut tx = gatehouse_schemas::tenant_tx(&self.app, tenant)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    }
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn uuid_text(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn what_was_committed_while_no_worker_ran_is_indexed_later() {
    let w = world().await;
    let acme = tenant("acme");
    w.folder_and_documents(&acme, &[("d1", "Quarterly report"), ("d2", "Offsite plan")])
        .await;
    w.upload(&acme, "d2", "aurora borealis over the fjord")
        .await;
    // The jobs were written by the same transactions: nothing ran, nothing is lost.
    assert!(w.pending(&acme).await >= 3);
    assert!(w.found(&acme, "quarterly").await.is_empty());

    let done = w.worker().drain(&acme).await.unwrap();
    assert!(done >= 3);
    assert_eq!(w.pending(&acme).await, 0);
    assert_eq!(w.found(&acme, "quarterly").await, ["d1"]);
    assert_eq!(
        w.found(&acme, "borealis").await,
        ["d2"],
        "the content's text is searchable"
    );
    assert!(w.found(&tenant("globex"), "quarterly").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn renames_moves_and_deletes_follow_and_deleted_contents_leave_the_store() {
    let w = world().await;
    let acme = tenant("acme");
    w.folder_and_documents(&acme, &[("d1", "Quarterly report")])
        .await;
    let object = w.upload(&acme, "d1", "pelican migration data").await;
    let worker = w.worker();
    worker.drain(&acme).await.unwrap();

    // A lost index is rebuilt from the database on request.
    w.index.remove_tenant(&acme).await.unwrap();
    assert!(w.found(&acme, "pelican").await.is_empty());
    let queued = gatehouse_adapter_search::outbox::request_reindex(&w.app, &acme)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    worker.drain(&acme).await.unwrap();
    assert_eq!(w.found(&acme, "pelican").await, ["d1"]);

    // The text is kept: a rename re-indexes without the content (even if it vanished).
    w.contents.store.delete(&object).await.unwrap();
    w.as_tenant(
        &acme,
        "UPDATE documents SET name = 'Annual summary' WHERE id = 'd1'",
    )
    .await;
    worker.drain(&acme).await.unwrap();
    assert_eq!(w.found(&acme, "annual").await, ["d1"]);
    assert!(w.found(&acme, "quarterly").await.is_empty());
    assert_eq!(w.found(&acme, "pelican").await, ["d1"]);

    w.as_tenant(
        &acme,
        "UPDATE documents SET folder_id = 'sub', path = '/root/sub/' WHERE id = 'd1'",
    )
    .await;
    worker.drain(&acme).await.unwrap();
    let in_sub = SearchQuery {
        folder: Some("sub".into()),
        limit: 10,
        ..SearchQuery::default()
    };
    assert_eq!(w.index.search(&acme, &in_sub).await.unwrap().hits.len(), 1);

    // A delete reaches the index, and the store (its object is queued for deletion).
    let object = w.upload(&acme, "d1", "second version").await;
    w.as_tenant(&acme, "DELETE FROM documents WHERE id = 'd1'")
        .await;
    worker.drain(&acme).await.unwrap();
    assert!(w.found(&acme, "").await.is_empty());
    assert!(matches!(
        w.contents.store.download(&object).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(w.pending(&acme).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_index_keeps_the_jobs_with_a_backoff() {
    let w = world().await;
    let acme = tenant("acme");
    w.folder_and_documents(&acme, &[("d1", "Quarterly report")])
        .await;
    let blocked = w.dir.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let broken = Worker::new(
        w.app.clone(),
        Arc::new(Arc::new(EmbeddedIndex::new(&blocked))),
        None,
    );
    let before = w.pending(&acme).await;
    assert!(broken.drain(&acme).await.is_err());

    let mut tx = gatehouse_schemas::tenant_tx(&w.app, &acme).await.unwrap();
    let (count, attempts, waiting, error): (i64, i32, bool, Option<String>) = sqlx::query_as(
        "SELECT count(*), min(attempts), bool_and(not_before > now()), max(last_error) FROM outbox",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((count, attempts, waiting), (before, 1, true));
    assert!(error.unwrap().contains("unavailable"));
    sqlx::query("UPDATE outbox SET not_before = now()")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Not due yet means not done; due again, a working worker does them.
    w.worker().drain(&acme).await.unwrap();
    assert_eq!(w.found(&acme, "quarterly").await, ["d1"]);
    assert_eq!(w.pending(&acme).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_is_under_row_level_security() {
    let w = world().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    w.folder_and_documents(&acme, &[("d1", "Quarterly report")])
        .await;
    w.folder_and_documents(&globex, &[("g1", "Secret plan")])
        .await;
    let no_tenant: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&w.app)
        .await
        .unwrap();
    assert_eq!(no_tenant, 0, "no tenant set: nothing");
    let mut tx = gatehouse_schemas::tenant_tx(&w.app, &acme).await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM outbox")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, ["acme"]);
    let forged = sqlx::query(
        "INSERT INTO outbox (tenant_id, kind, document_id) VALUES ('globex', 'index', 'g1')",
    )
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "a job for another tenant is refused");
    drop(tx);
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&w.owner)
        .await
        .unwrap();
    assert_eq!(
        all, 0,
        "even the owner sees nothing without a tenant (FORCE)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_worker_is_woken_by_the_commit() {
    let w = world().await;
    let acme = tenant("acme");
    // A sweep only at start (an hour apart): what follows is found through the notification.
    tokio::spawn(
        w.worker()
            .run(Duration::from_secs(3600), std::future::pending()),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.folder_and_documents(&acme, &[("d1", "Kingfisher sightings")])
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.found(&acme, "kingfisher").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not indexed within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_older_than_the_outbox_are_indexed_after_the_upgrade() {
    let dir = gatehouse_pgcluster::scratch_dir().unwrap();
    let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
    let urls = cluster.provision("gatehouse").unwrap();
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&urls.owner_url)
        .await
        .unwrap();
    let app = PgPoolOptions::new()
        .max_connections(2)
        .connect(&urls.app_url)
        .await
        .unwrap();
    gatehouse_schemas::migrate_to(&owner, 5).await.unwrap();
    let acme = tenant("acme");
    let mut tx = gatehouse_schemas::tenant_tx(&app, &acme).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO folders (tenant_id, id, name, path, owner_id) VALUES ('acme', 'root', 'Root', '/root/', 'alice');\
         INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id) VALUES ('acme', 'old', 'root', '/root/', 'Heirloom ledger', 'alice');",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    gatehouse_schemas::migrate(&owner).await.unwrap();
    let index = Arc::new(EmbeddedIndex::new(dir.path().join("index")));
    Worker::new(app.clone(), Arc::new(index.clone()), None)
        .drain(&acme)
        .await
        .unwrap();
    let query = SearchQuery {
        text: "heirloom".into(),
        limit: 5,
        ..SearchQuery::default()
    };
    assert_eq!(index.search(&acme, &query).await.unwrap().hits.len(), 1);
    // The owner is back under FORCEd row-level security.
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(seen, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shredded_tenant_leaves_no_readable_copy_of_its_contents_anywhere() {
    let w = world().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    w.folder_and_documents(&acme, &[("d1", "Quarterly report")])
        .await;
    w.folder_and_documents(&globex, &[("g1", "Globex notes")])
        .await;
    let object = w
        .upload(&acme, "d1", "the nightingale sings at midnight")
        .await;
    w.upload(&globex, "g1", "the nightingale of globex").await;
    w.worker().drain(&acme).await.unwrap();
    w.worker().drain(&globex).await.unwrap();
    assert_eq!(w.found(&acme, "nightingale").await, ["d1"]);
    // Read as the adapters read, in acme's transaction (row-level security is forced).
    let marker_texts = |pool: PgPool| async move {
        let mut tx = gatehouse_schemas::tenant_tx(&pool, &tenant("acme"))
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM document_texts WHERE text LIKE '%nightingale%'",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap()
    };
    assert_eq!(marker_texts(w.app.clone()).await, 1, "extracted for search");

    let shredded =
        gatehouse_adapter_search::shred::shred_tenant(&w.contents.keys, &w.app, &w.index, &acme)
            .await
            .unwrap();
    assert!(shredded.keys >= 1 && shredded.texts == 1, "{shredded:?}");

    // Every store, searched for the marker: the object, the texts, the index.
    let opened = sealed::get(&w.contents.keys, &w.contents.store, &acme, &object, "").await;
    assert!(opened.is_err(), "the object cannot be opened");
    assert_eq!(marker_texts(w.app.clone()).await, 0, "no extracted text");
    assert!(
        w.found(&acme, "nightingale").await.is_empty(),
        "nothing in the index"
    );
    // The outbox cannot bring it back: the document is indexed again (renamed), and its
    // content cannot be opened to extract.
    w.as_tenant(
        &acme,
        "UPDATE documents SET name = 'Renamed', updated_at = now() WHERE id = 'd1'",
    )
    .await;
    w.worker().drain(&acme).await.unwrap();
    assert_eq!(w.found(&acme, "renamed").await, ["d1"], "the job ran");
    assert!(w.found(&acme, "nightingale").await.is_empty());
    assert_eq!(marker_texts(w.app.clone()).await, 0);
    // Another tenant keeps its own.
    assert_eq!(w.found(&globex, "nightingale").await, ["g1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_that_bursts_its_extraction_limits_is_quarantined_and_the_queue_goes_on() {
    let w = world().await;
    let acme = tenant("acme");
    w.folder_and_documents(&acme, &[("bomb", "bomb.pdf"), ("memo", "memo.txt")])
        .await;
    w.upload_as(&acme, "bomb", common::pdf_bomb(1), "application/pdf")
        .await;
    w.upload(&acme, "memo", "quarterly widgets").await;
    let worker = w.worker();
    worker.drain(&acme).await.unwrap();
    assert_eq!(w.pending(&acme).await, 0, "no job is left behind");
    assert_eq!(w.found(&acme, "widgets").await, vec!["memo"]);
    assert_eq!(
        w.found(&acme, "bomb").await,
        vec!["bomb"],
        "indexed by its metadata"
    );
    assert_eq!(w.extraction(&acme, "bomb").await, ("quarantined".into(), 1));
    assert_eq!(w.extraction(&acme, "memo").await, ("done".into(), 1));

    // Indexed again (a rename, a reindex): never extracted again.
    gatehouse_adapter_search::outbox::request_reindex(&w.app, &acme)
        .await
        .unwrap();
    worker.drain(&acme).await.unwrap();
    assert_eq!(w.extraction(&acme, "bomb").await, ("quarantined".into(), 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extraction_that_never_finished_is_quarantined_after_a_few_starts() {
    let w = world().await;
    let acme = tenant("acme");
    w.folder_and_documents(&acme, &[("memo", "memo.txt")]).await;
    w.upload(&acme, "memo", "quarterly widgets").await;
    // As a worker that died mid-extraction each time leaves it: started, never finished.
    w.as_tenant(
        &acme,
        &format!(
            "INSERT INTO document_texts (tenant_id, document_id, sha256, text, status, attempts) \
             SELECT v.tenant_id, v.document_id, v.sha256, '', 'started', {MAX_EXTRACTION_ATTEMPTS} \
             FROM document_versions v JOIN documents d ON d.tenant_id = v.tenant_id AND d.id = v.document_id \
             WHERE d.id = 'memo' AND v.version = d.current_version"
        ),
    )
    .await;
    w.worker().drain(&acme).await.unwrap();
    assert_eq!(
        w.extraction(&acme, "memo").await,
        ("quarantined".into(), MAX_EXTRACTION_ATTEMPTS + 1)
    );
    assert!(
        w.found(&acme, "widgets").await.is_empty(),
        "not extracted a fourth time"
    );
    assert_eq!(w.found(&acme, "memo").await, vec!["memo"]);
}
