//! The same behaviour from both engines: words, filters, facets, order, pages, updates,
//! deletes, read-policy filters, and tenants kept apart. The embedded engine always runs; Meilisearch runs when
//! MEILISEARCH_URL is set (and MEILISEARCH_KEY if it needs one), and says it was skipped
//! otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gatehouse_adapter_search::{
    EmbeddedIndex, IndexedDocument, MeiliIndex, SearchIndex, SearchQuery, Sort,
};
use gatehouse_adapter_sql::rows::{RowFilter, Subtree};
use gatehouse_core::TenantId;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(day: &str) -> DateTime<Utc> {
    format!("{day}T12:00:00Z").parse().unwrap()
}

#[allow(clippy::too_many_arguments)]
fn document(
    id: &str,
    name: &str,
    text: &str,
    folders: &[&str],
    owner: &str,
    tags: &[&str],
    kind: &str,
    created: &str,
    updated: &str,
) -> IndexedDocument {
    IndexedDocument {
        id: id.into(),
        name: name.into(),
        text: text.into(),
        folders: folders.iter().map(|s| s.to_string()).collect(),
        owner: owner.into(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        kind: Some(kind.into()),
        classification: "internal".into(),
        created_at: at(created),
        updated_at: at(updated),
    }
}

fn acme_documents() -> Vec<IndexedDocument> {
    let mut documents = vec![
        document(
            "d1",
            "Quarterly report",
            "revenue grew in the northern region",
            &["root", "fin"],
            "alice",
            &["finance", "q3"],
            "pdf",
            "2026-01-01",
            "2026-03-01",
        ),
        document(
            "d2",
            "Team offsite plan",
            "agenda for the offsite: hiking and revenue planning",
            &["root", "hr"],
            "bob",
            &["hr"],
            "docx",
            "2026-02-01",
            "2026-02-15",
        ),
        document(
            "d3",
            "Budget",
            "northern budget lines",
            &["root", "fin", "sub"],
            "alice",
            &["finance"],
            "markdown",
            "2026-03-01",
            "2026-01-10",
        ),
    ];
    documents[2].classification = "restricted".into();
    documents
}

/// The documents of `query` that `access` lets through, and how many the engine counted.
async fn accessible(
    index: &dyn SearchIndex,
    tenant: &TenantId,
    access: RowFilter,
) -> (Vec<String>, u64) {
    let q = SearchQuery {
        access,
        ..query("")
    };
    let found = index.search(tenant, &q).await.unwrap();
    let mut hits: Vec<String> = found.hits.into_iter().map(|(id, _)| id).collect();
    hits.sort();
    (hits, found.total)
}

/// A read policy's filter, applied by the engine itself: hits, totals and facets hold
/// only what it lets through.
async fn applies_access_filters(index: &dyn SearchIndex, acme: &TenantId) {
    let under = |folder: &str| {
        RowFilter::Under(vec![Subtree {
            folder_id: folder.into(),
            path: format!("/{folder}/"),
        }])
    };
    let restricted = RowFilter::Classification("restricted".into());
    let cases = [
        (RowFilter::Owner("alice".into()), vec!["d1", "d3"]),
        (
            RowFilter::all([
                RowFilter::any([RowFilter::Owner("bob".into()), under("fin")]),
                restricted.clone().negate(),
            ]),
            vec!["d1", "d2"],
        ),
        (RowFilter::Ids(vec!["d2".into(), "g1".into()]), vec!["d2"]),
        (RowFilter::Ids(vec!["d1".into()]).negate(), vec!["d2", "d3"]),
        (under("sub"), vec!["d3"]),
        (restricted, vec!["d3"]),
        (RowFilter::Never, vec![]),
        (RowFilter::Always, vec!["d1", "d2", "d3"]),
    ];
    for (access, expected) in cases {
        let (hits, total) = accessible(index, acme, access.clone()).await;
        assert_eq!(hits, expected, "{access:?}");
        assert_eq!(total, expected.len() as u64, "{access:?}");
    }
    let q = SearchQuery {
        access: RowFilter::Owner("alice".into()),
        ..query("")
    };
    let found = index.search(acme, &q).await.unwrap();
    assert_eq!(
        found.facets.owner,
        counts(&[("alice", 2)]),
        "facets count only what passes"
    );
}

fn query(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        limit: 10,
        ..SearchQuery::default()
    }
}

async fn ids(index: &dyn SearchIndex, tenant: &TenantId, query: SearchQuery) -> Vec<String> {
    let found = index.search(tenant, &query).await.unwrap();
    found.hits.into_iter().map(|(id, _)| id).collect()
}

async fn sorted_ids(index: &dyn SearchIndex, tenant: &TenantId, query: SearchQuery) -> Vec<String> {
    let mut found = ids(index, tenant, query).await;
    found.sort();
    found
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn behaves(index: &dyn SearchIndex) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    index.upsert(&acme, acme_documents()).await.unwrap();
    index
        .upsert(
            &globex,
            vec![document(
                "g1",
                "Quarterly report",
                "revenue secret of globex",
                &["groot"],
                "alice",
                &["finance"],
                "pdf",
                "2026-01-05",
                "2026-01-05",
            )],
        )
        .await
        .unwrap();

    // Words: all of them, in names and texts; tenants apart.
    assert_eq!(
        sorted_ids(index, &acme, query("revenue")).await,
        ["d1", "d2"]
    );
    assert_eq!(ids(index, &globex, query("revenue")).await, ["g1"]);
    assert_eq!(ids(index, &acme, query("northern budget")).await, ["d3"]);
    assert!(ids(index, &acme, query("globex")).await.is_empty());
    let found = index.search(&acme, &query("revenue")).await.unwrap();
    assert_eq!(found.total, 2);
    assert!(
        found.hits.iter().all(|(_, score)| score.is_some()),
        "relevance order has scores"
    );

    // Filters.
    let filtered = |f: fn(&mut SearchQuery)| {
        let mut q = query("");
        f(&mut q);
        q
    };
    assert_eq!(
        ids(
            index,
            &acme,
            SearchQuery {
                owners: vec!["alice".into()],
                ..query("revenue")
            }
        )
        .await,
        ["d1"]
    );
    assert_eq!(
        sorted_ids(index, &acme, filtered(|q| q.tags = vec!["finance".into()])).await,
        ["d1", "d3"]
    );
    assert_eq!(
        ids(
            index,
            &acme,
            filtered(|q| q.tags = vec!["finance".into(), "q3".into()])
        )
        .await,
        ["d1"]
    );
    assert_eq!(
        sorted_ids(
            index,
            &acme,
            filtered(|q| q.kinds = vec!["pdf".into(), "docx".into()])
        )
        .await,
        ["d1", "d2"]
    );
    assert_eq!(
        sorted_ids(index, &acme, filtered(|q| q.folder = Some("fin".into()))).await,
        ["d1", "d3"]
    );
    assert_eq!(
        ids(index, &acme, filtered(|q| q.folder = Some("sub".into()))).await,
        ["d3"]
    );
    assert!(
        ids(index, &acme, filtered(|q| q.folder = Some("groot".into())))
            .await
            .is_empty()
    );
    assert_eq!(
        sorted_ids(
            index,
            &acme,
            filtered(|q| q.created_from = Some(at("2026-02-01")))
        )
        .await,
        ["d2", "d3"]
    );
    assert_eq!(
        ids(
            index,
            &acme,
            filtered(|q| q.created_until = Some(at("2026-02-01")))
        )
        .await,
        ["d1"]
    );
    assert_eq!(
        ids(
            index,
            &acme,
            filtered(|q| q.updated_from = Some(at("2026-02-20")))
        )
        .await,
        ["d1"]
    );

    // Order and pages.
    assert_eq!(
        ids(index, &acme, filtered(|q| q.sort = Sort::Newest)).await,
        ["d1", "d2", "d3"]
    );
    assert_eq!(
        ids(index, &acme, filtered(|q| q.sort = Sort::Oldest)).await,
        ["d3", "d2", "d1"]
    );
    let page = SearchQuery {
        sort: Sort::Newest,
        offset: 1,
        limit: 1,
        ..query("")
    };
    let found = index.search(&acme, &page).await.unwrap();
    assert_eq!(
        (found.total, found.hits.len(), found.hits[0].0.as_str()),
        (3, 1, "d2")
    );

    // Facets count every match, not the page.
    let facets = index
        .search(
            &acme,
            &SearchQuery {
                limit: 1,
                ..query("")
            },
        )
        .await
        .unwrap()
        .facets;
    assert_eq!(facets.owner, counts(&[("alice", 2), ("bob", 1)]));
    assert_eq!(facets.tags, counts(&[("finance", 2), ("hr", 1), ("q3", 1)]));
    assert_eq!(
        facets.kind,
        counts(&[("docx", 1), ("markdown", 1), ("pdf", 1)])
    );

    // Whatever a user types is a query.
    index
        .search(&acme, &query("revenue AND ( \"unclosed"))
        .await
        .unwrap();

    // An upsert replaces; a removal removes; unknown ids are no error.
    let mut renamed = acme_documents().remove(0);
    renamed.name = "Annual report".into();
    renamed.text = "figures".into();
    index.upsert(&acme, vec![renamed]).await.unwrap();
    assert_eq!(ids(index, &acme, query("revenue")).await, ["d2"]);
    assert_eq!(ids(index, &acme, query("annual")).await, ["d1"]);
    applies_access_filters(index, &acme).await;

    index
        .remove(&acme, vec!["d2".into(), "nope".into()])
        .await
        .unwrap();
    assert!(ids(index, &acme, query("revenue")).await.is_empty());
    assert_eq!(
        ids(index, &globex, query("revenue")).await,
        ["g1"],
        "another tenant's removal touches nothing here"
    );

    // A tenant's removal is whole and only its own.
    index.remove_tenant(&acme).await.unwrap();
    assert!(ids(index, &acme, query("")).await.is_empty());
    assert_eq!(ids(index, &globex, query("")).await, ["g1"]);
    index.remove_tenant(&globex).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_engine() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(EmbeddedIndex::new(dir.path()));
    behaves(&index).await;
    // A tenant that never indexed anything gets nothing, and no directory.
    assert!(ids(&index, &tenant("initech"), query("")).await.is_empty());
    assert!(!dir.path().join("initech").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_engine_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let acme = tenant("acme");
    Arc::new(EmbeddedIndex::new(dir.path()))
        .upsert(&acme, acme_documents())
        .await
        .unwrap();
    let reopened = Arc::new(EmbeddedIndex::new(dir.path()));
    assert_eq!(
        sorted_ids(&reopened, &acme, query("revenue")).await,
        ["d1", "d2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_engine_that_cannot_write_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("not-a-directory");
    std::fs::write(&blocked, b"").unwrap();
    let index = Arc::new(EmbeddedIndex::new(&blocked));
    let error = index
        .upsert(&tenant("acme"), acme_documents())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unavailable"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn meilisearch_engine() {
    let Ok(url) = std::env::var("MEILISEARCH_URL") else {
        println!("skipped: MEILISEARCH_URL is not set (the Meilisearch engine was not tested)");
        return;
    };
    let key = std::env::var("MEILISEARCH_KEY").ok();
    let uid = format!("gatehouse_test_{:016x}", rand_id());
    let index = MeiliIndex::new(&url, key.as_deref(), &uid).unwrap();
    behaves(&index).await;
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}
