//! Lists that hold exactly what the reader may read: the read policy compiled into the
//! list's SQL, compared item by item with the decision point's own answers over real HTTP
//! and a real PostgreSQL; the post-check that withholds (and audits) what a stale filter
//! let through; the item-by-item fallback for policies no filter expresses.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Gateway, claims};
use serde_json::{Value, json};

const ACME_DOCUMENTS: &[&str] = &[
    "acme-plan",
    "acme-roadmap",
    "acme-contract",
    "acme-salaries",
    "acme-held-doc",
    "acme-olive-notes",
    "acme-public",
];
const ACME_USERS: &[&str] = &[
    "acme-vera",
    "acme-ed",
    "acme-ada",
    "acme-aud",
    "acme-nora",
    "acme-gus",
    "acme-sam",
    "acme-olive",
    "acme-held",
];

/// Every page of `path` (which has no query yet besides `extra`), by cursor.
fn all_pages(gw: &Gateway, token: &str, extra: &str, limit: usize) -> (Vec<String>, Value) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/documents?limit={limit}{extra}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = gw.get(&path, token);
        assert_eq!(status, 200, "{path}: {body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        ids.extend(items.iter().map(|d| d["id"].as_str().unwrap().to_string()));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (ids, body),
        }
    }
}

/// The documents the decision point lets `token` read, asked one by one.
fn readable_one_by_one(gw: &Gateway, token: &str) -> BTreeSet<String> {
    ACME_DOCUMENTS
        .iter()
        .filter(|id| gw.get(&format!("/documents/{id}"), token).0 == 200)
        .map(|id| id.to_string())
        .collect()
}

fn mfa_token(gw: &Gateway, user: &str) -> String {
    let mut c = claims(user, "acme");
    c["amr"] = json!(["pwd", "mfa"]);
    gw.hs256(&c)
}

#[test]
fn every_readers_list_is_exactly_what_they_may_read() {
    let gw = Gateway::start_with_documents();
    for user in ACME_USERS {
        for token in [gw.token(user, "acme"), mfa_token(&gw, user)] {
            let expected = readable_one_by_one(&gw, &token);
            let (listed, last) = all_pages(&gw, &token, "&count=true", 2);
            assert_eq!(last["filtering"], "compiled", "{user}");
            let unique: BTreeSet<String> = listed.iter().cloned().collect();
            assert_eq!(
                unique.len(),
                listed.len(),
                "{user}: a document on two pages"
            );
            assert_eq!(unique, expected, "{user}");
            assert_eq!(last["total"], expected.len(), "{user}: the count");
        }
    }
    // Spot checks of the policies behind them: restricted needs MFA; a viewer grant on a
    // folder reaches its subtree; the support link reaches its subtree with MFA only.
    let vera = gw.token("acme-vera", "acme");
    assert!(
        !all_pages(&gw, &vera, "", 50)
            .0
            .contains(&"acme-salaries".to_string())
    );
    let gus = all_pages(&gw, &gw.token("acme-gus", "acme"), "", 50).0;
    assert_eq!(gus, ["acme-plan", "acme-roadmap"], "shared with gus");
    let sam = gw.token("acme-sam", "acme");
    assert!(all_pages(&gw, &sam, "", 50).0.is_empty());
    assert_eq!(
        all_pages(&gw, &mfa_token(&gw, "acme-sam"), "", 50).0,
        ["acme-contract"]
    );
}

#[test]
fn scopes_narrow_the_list_and_bad_queries_are_refused() {
    let gw = Gateway::start_with_documents();
    let ada = mfa_token(&gw, "acme-ada");
    let (under, _) = all_pages(&gw, &ada, "&under=acme-projects", 10);
    assert_eq!(under, ["acme-plan"]);
    let (direct, _) = all_pages(&gw, &ada, "&folder=acme-root", 10);
    let direct: BTreeSet<&str> = direct.iter().map(String::as_str).collect();
    assert_eq!(
        direct,
        BTreeSet::from(["acme-roadmap", "acme-salaries", "acme-public"])
    );
    // The folder listing is filtered the same way: no restricted document without MFA.
    let (status, body) = gw.get(
        "/folders/acme-root/documents",
        &gw.token("acme-vera", "acme"),
    );
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"acme-public") && !names.contains(&"acme-salaries"),
        "{names:?}"
    );
    for bad in [
        "/documents?folder=a&under=b",
        "/documents?limit=0",
        "/documents?cursor=nonsense",
        "/documents?owner=acme-ada",
        "/documents?count=maybe",
    ] {
        let (status, body) = gw.get(bad, &ada);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_input")),
            "{bad}"
        );
    }
    // Another tenant's folder does not exist here; another tenant's reader sees only theirs.
    let (status, body) = gw.get("/documents?under=globex-root", &ada);
    assert_eq!(status, 404, "{body}");
    let gina = gw.token("globex-gina", "globex");
    let (theirs, _) = all_pages(&gw, &gina, "", 50);
    assert!(
        !theirs.is_empty() && theirs.iter().all(|id| id.starts_with("globex-")),
        "{theirs:?}"
    );
}

#[test]
fn a_stale_filter_is_caught_by_the_post_check_withheld_and_audited() {
    let gw = Gateway::start_with_documents();
    let gus = gw.token("acme-gus", "acme");
    // A share row the entities do not know (a write that bypassed the adapter): the
    // compiled filter now lets acme-olive-notes through, the decision point does not.
    gw.postgres
        .as_ref()
        .unwrap()
        .execute(
            "gatehouse",
            "INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by) \
             VALUES ('acme', 'drift', 'Document', 'acme-olive-notes', 'User', 'acme-gus', 'viewer', 'test')",
        )
        .unwrap();
    let (listed, _) = all_pages(&gw, &gus, "", 50);
    assert_eq!(listed, ["acme-plan", "acme-roadmap"], "withheld");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mismatch = loop {
        let records = gw.audit("acme");
        let found = records.into_iter().find(|r| {
            r.record
                .errors
                .iter()
                .any(|e| e.contains("filter_mismatch"))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no audit record of the mismatch");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mismatch.record.resource, r#"Document::"acme-olive-notes""#);
    assert_eq!(mismatch.record.decision, "deny");
    let metrics = gw.client.get(&gw.metrics).send().unwrap().text().unwrap();
    assert!(
        metrics.contains(r#"gatehouse_filter_mismatches_total{tenant="acme"} 1"#),
        "{metrics}"
    );
}

#[test]
fn policies_no_filter_expresses_fall_back_to_deciding_each_document() {
    let gw = Gateway::start_with_documents();
    // A tenant policy on a pattern of names: partial evaluation leaves a `like`.
    std::fs::write(
        gw.dir.path().join("policies/90-drafts.cedar"),
        r#"@id("drafts-for-everyone")
@purpose("everyone in a tenant reads its public drafts")
permit (principal is User, action == Action::"document:read", resource is Document)
when { resource.tenant == principal.tenant && resource.name like "*public*" };
"#,
    )
    .unwrap();
    let sam = gw.token("acme-sam", "acme");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (listed, last) = loop {
        let answer = all_pages(&gw, &sam, "", 1);
        if answer.1["filtering"] == "item_by_item" || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(last["filtering"], "item_by_item", "{last}");
    assert_eq!(
        listed,
        readable_one_by_one(&gw, &sam)
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(
        !listed.is_empty(),
        "the pattern policy lets sam read something"
    );
    // No cursor names a document sam may not read (a cursor after a denied one is sealed),
    // and the pages hold exactly what sam may read.
    let readable = readable_one_by_one(&gw, &sam);
    let mut cursor: Option<String> = None;
    let mut paged = BTreeSet::new();
    for _ in 0..50 {
        let mut path = "/documents?limit=1".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = gw.get(&path, &sam);
        assert_eq!(status, 200, "{body}");
        for item in body["items"].as_array().unwrap() {
            paged.insert(item["id"].as_str().unwrap().to_string());
        }
        let Some(next) = body["next_cursor"].as_str() else {
            break;
        };
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(next.strip_prefix("s.").unwrap_or(next))
            .unwrap();
        let decoded = String::from_utf8_lossy(&bytes);
        for hidden in ACME_DOCUMENTS.iter().filter(|d| !readable.contains(**d)) {
            assert!(!decoded.contains(hidden), "{hidden} in cursor {decoded}");
        }
        cursor = Some(next.to_string());
    }
    assert_eq!(paged, readable);
    // A search decided item by item tells no count or facet of what the searcher may not
    // read (sam may not search; vera's read policy has the pattern too).
    let (status, found) = gw.get("/search?q=acme", &gw.token("acme-vera", "acme"));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["filtering"], "item_by_item", "{found}");
    assert!(found["total"].is_null(), "{found}");
    assert!(
        found.get("facets").is_none() && found.get("withheld").is_none(),
        "{found}"
    );
    let metrics = gw.client.get(&gw.metrics).send().unwrap().text().unwrap();
    assert!(
        metrics.contains(
            r#"gatehouse_filter_fallbacks_total{adapter="adapter:documents",tenant="acme"}"#
        ),
        "{metrics}"
    );
}
