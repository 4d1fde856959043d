//! The property behind lists and searches: for random tenants (folder trees, owners,
//! classifications, roles, groups, shares, agents with capabilities and expiries), every
//! principal's filtered list from PostgreSQL and filtered search from the embedded engine
//! hold exactly the documents the decision point lets them read, asked one by one, with
//! and without MFA; and never a document of another tenant.
//!
//! Each generated case is a fresh tenant in one running gateway, written straight into
//! its tables and entities (as the tenant's shares and grants look after the documents
//! adapter wrote them), then read over real HTTP.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Gateway, claims};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

const ROLES: &[Option<&str>] = &[None, None, Some("viewer"), Some("editor"), Some("admin")];
const CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "restricted"];

#[derive(Debug, Clone)]
struct User {
    role: Option<&'static str>,
    groups: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Agent {
    acts_for: usize,
    capabilities: Vec<&'static str>,
    expired: bool,
}

#[derive(Debug, Clone)]
struct Share {
    on_folder: bool,
    target: usize,
    to_group: bool,
    grantee: usize,
    editor: bool,
}

#[derive(Debug, Clone)]
struct World {
    users: Vec<User>,
    agents: Vec<Agent>,
    /// Each folder's parent (folder 0 is the root).
    folders: Vec<(usize, usize)>,
    /// (folder, owner, classification) of each document.
    documents: Vec<(usize, usize, &'static str)>,
    shares: Vec<Share>,
}

const GROUPS: usize = 2;

fn worlds() -> impl Strategy<Value = World> {
    let users = prop::collection::vec(
        (
            prop::sample::select(ROLES),
            prop::collection::vec(0..GROUPS, 0..=2),
        )
            .prop_map(|(role, groups)| User { role, groups }),
        2..5,
    );
    users.prop_flat_map(|users| {
        let n = users.len();
        let agents = prop::collection::vec(
            (
                0..n,
                prop::sample::subsequence(vec!["view", "edit"], 0..=2),
                prop::bool::weighted(0.2),
            )
                .prop_map(|(acts_for, capabilities, expired)| Agent {
                    acts_for,
                    capabilities,
                    expired,
                }),
            0..3,
        );
        // Folder i > 0 hangs below one of the folders before it.
        let folders = (1usize..6).prop_flat_map(move |count| {
            (0..count)
                .map(|i| {
                    (0..i.max(1), 0..n).prop_map(move |(p, o)| (if i == 0 { 0 } else { p }, o))
                })
                .collect::<Vec<_>>()
        });
        (Just(users), agents, folders).prop_flat_map(move |(users, agents, folders)| {
            let f = folders.len();
            let documents =
                prop::collection::vec((0..f, 0..n, prop::sample::select(CLASSIFICATIONS)), 1..10);
            let shares = prop::collection::vec(
                (
                    any::<bool>(),
                    0..16usize,
                    any::<bool>(),
                    0..n.max(GROUPS),
                    any::<bool>(),
                )
                    .prop_map(|(on_folder, target, to_group, grantee, editor)| {
                        Share {
                            on_folder,
                            target,
                            to_group,
                            grantee,
                            editor,
                        }
                    }),
                0..5,
            );
            (
                Just(users.clone()),
                Just(agents.clone()),
                Just(folders),
                documents,
                shares,
            )
                .prop_map(|(users, agents, folders, documents, shares)| World {
                    users,
                    agents,
                    folders,
                    documents,
                    shares,
                })
        })
    })
}

/// SQL writing `world` as tenant `t`: the directory row, the entities, the rows.
fn world_sql(t: &str, w: &World) -> String {
    let mut sql = format!(
        "INSERT INTO tenants (tenant_id, name, plan, region, suspended) VALUES ('{t}', '{t}', 'enterprise', 'eu', false);\n"
    );
    let entity = |kind: &str, id: &str, attrs: Value, parents: Value| {
        format!(
            "INSERT INTO entities (tenant_id, entity_type, entity_id, attrs, parents) VALUES ('{t}', '{kind}', '{id}', '{attrs}', '{parents}');\n"
        )
    };
    let tenant = json!({ "__entity": { "type": "Tenant", "id": t } });
    let user_ref = |u: usize| json!({ "__entity": { "type": "User", "id": format!("{t}-u{u}") } });
    let node = |grantee: &str, role: &str| json!({ "__entity": { "type": "Grant", "id": format!("{grantee}/{role}") } });
    for g in 0..GROUPS {
        sql += &entity(
            "Group",
            &format!("{t}-g{g}"),
            json!({ "tenant": tenant, "name": "g" }),
            json!([]),
        );
    }
    for (i, u) in w.users.iter().enumerate() {
        let mut grantees = vec![format!("user:{t}-u{i}")];
        grantees.extend(u.groups.iter().map(|g| format!("group:{t}-g{g}")));
        let grants = |role: &str| Value::Array(grantees.iter().map(|g| node(g, role)).collect());
        let mut parents: Vec<Value> = u
            .groups
            .iter()
            .map(|g| json!({ "type": "Group", "id": format!("{t}-g{g}") }))
            .collect();
        if let Some(role) = u.role {
            parents.push(json!({ "type": "Role", "id": role }));
        }
        let attrs = json!({ "tenant": tenant, "name": "u", "viewer_grants": grants("viewer"), "editor_grants": grants("editor"), "legal_hold": false });
        sql += &entity("User", &format!("{t}-u{i}"), attrs, Value::Array(parents));
    }
    for (i, a) in w.agents.iter().enumerate() {
        let mut attrs =
            json!({ "tenant": tenant, "name": "a", "acts_for": user_ref(a.acts_for), "tools": [] });
        if a.expired {
            attrs["expires_at"] =
                json!({ "__extn": { "fn": "datetime", "arg": "2020-01-01T00:00:00Z" } });
        }
        let parents: Vec<Value> = a
            .capabilities
            .iter()
            .map(|c| json!({ "type": "Capability", "id": c }))
            .collect();
        sql += &entity("Agent", &format!("{t}-a{i}"), attrs, Value::Array(parents));
    }
    // Grant parents of each folder and document, from the shares.
    let mut folder_grants = vec![Vec::new(); w.folders.len()];
    let mut document_grants = vec![Vec::new(); w.documents.len()];
    for (k, s) in w.shares.iter().enumerate() {
        let grantee = if s.to_group {
            ("Group", format!("{t}-g{}", s.grantee % GROUPS))
        } else {
            ("User", format!("{t}-u{}", s.grantee % w.users.len()))
        };
        let role = if s.editor { "editor" } else { "viewer" };
        let (kind, target) = if s.on_folder {
            ("Folder", s.target % w.folders.len())
        } else {
            ("Document", s.target % w.documents.len())
        };
        let node_id = format!("{}:{}/{role}", grantee.0.to_lowercase(), grantee.1);
        let parent = json!({ "type": "Grant", "id": node_id });
        let list = if s.on_folder {
            &mut folder_grants[target]
        } else {
            &mut document_grants[target]
        };
        if list.contains(&parent) {
            continue;
        }
        list.push(parent);
        let prefix = if s.on_folder { "f" } else { "d" };
        sql += &format!(
            "INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by) \
             VALUES ('{t}', 's{k}', '{kind}', '{t}-{prefix}{target}', '{}', '{}', '{role}', 'test');\n",
            grantee.0, grantee.1
        );
    }
    let mut paths: Vec<String> = Vec::new();
    for (i, (parent, owner)) in w.folders.iter().enumerate() {
        let id = format!("{t}-f{i}");
        let (parent_sql, path, mut parents) = if i == 0 {
            ("NULL".to_string(), format!("/{id}/"), vec![])
        } else {
            (
                format!("'{t}-f{parent}'"),
                format!("{}{id}/", paths[*parent]),
                vec![json!({ "type": "Folder", "id": format!("{t}-f{parent}") })],
            )
        };
        parents.extend(folder_grants[i].clone());
        sql += &format!(
            "INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id) VALUES ('{t}', '{id}', {parent_sql}, '{id}', '{path}', '{t}-u{owner}');\n"
        );
        let attrs =
            json!({ "tenant": tenant, "name": id, "owner": user_ref(*owner), "legal_hold": false });
        sql += &entity("Folder", &id, attrs, Value::Array(parents));
        paths.push(path);
    }
    for (i, (folder, owner, classification)) in w.documents.iter().enumerate() {
        let id = format!("{t}-d{i}");
        sql += &format!(
            "INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id, classification) VALUES ('{t}', '{id}', '{t}-f{folder}', '{}', '{id}', '{t}-u{owner}', '{classification}');\n",
            paths[*folder]
        );
        let mut parents = vec![json!({ "type": "Folder", "id": format!("{t}-f{folder}") })];
        parents.extend(document_grants[i].clone());
        let attrs = json!({ "tenant": tenant, "name": id, "owner": user_ref(*owner), "classification": classification, "legal_hold": false });
        sql += &entity("Document", &id, attrs, Value::Array(parents));
    }
    // An administrator with MFA, who reads everything: to know when the index caught up.
    let attrs = json!({ "tenant": tenant, "name": "admin", "viewer_grants": [], "editor_grants": [], "legal_hold": false });
    sql += &entity(
        "User",
        &format!("{t}-admin"),
        attrs,
        json!([{ "type": "Role", "id": "admin" }]),
    );
    format!("BEGIN;\n{sql}COMMIT;\n")
}

fn token(gw: &Gateway, t: &str, user: &str, agent: Option<&str>, mfa: bool) -> String {
    let mut c = claims(user, t);
    if let Some(agent) = agent {
        c["agent"] = json!(agent);
    }
    if mfa {
        c["amr"] = json!(["mfa"]);
    }
    gw.hs256(&c)
}

fn ids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn check(gw: &Gateway, t: &str, w: &World) -> Result<(), TestCaseError> {
    gw.postgres
        .as_ref()
        .unwrap()
        .execute("gatehouse", &world_sql(t, w))
        .map_err(|e| TestCaseError::fail(format!("writing the world: {e}")))?;
    let documents: Vec<String> = (0..w.documents.len())
        .map(|i| format!("{t}-d{i}"))
        .collect();
    // Wait for the outbox to index the tenant.
    let admin = token(gw, t, &format!("{t}-admin"), None, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = gw.get("/search?limit=1", &admin);
        if status == 200 && body["total"] == documents.len() {
            break;
        }
        prop_assert!(
            Instant::now() < deadline,
            "the index never caught up: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut principals: Vec<(String, Option<String>)> = (0..w.users.len())
        .map(|i| (format!("{t}-u{i}"), None))
        .collect();
    for (i, a) in w.agents.iter().enumerate() {
        principals.push((format!("{t}-u{}", a.acts_for), Some(format!("{t}-a{i}"))));
    }
    for (user, agent) in &principals {
        for mfa in [false, true] {
            let token = token(gw, t, user, agent.as_deref(), mfa);
            let who = format!("{user} agent={agent:?} mfa={mfa}");
            let truth: BTreeSet<String> = documents
                .iter()
                .filter(|id| gw.get(&format!("/documents/{id}"), &token).0 == 200)
                .cloned()
                .collect();
            // The list, in pages of 3.
            let mut listed = Vec::new();
            let mut cursor = String::new();
            loop {
                let (status, body) =
                    gw.get(&format!("/documents?limit=3&count=true{cursor}"), &token);
                if status == 403 {
                    // An expired agent may not even list: then it may read nothing either.
                    prop_assert!(
                        truth.is_empty(),
                        "{} may read {:?} but not list",
                        who,
                        truth
                    );
                    break;
                }
                prop_assert_eq!(status, 200, "{} list: {}", who, body);
                prop_assert_eq!(&body["filtering"], "compiled", "{}", who);
                prop_assert_eq!(
                    body["total"].as_u64(),
                    Some(truth.len() as u64),
                    "{} total",
                    who
                );
                listed.extend(ids_of(&body["items"]));
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => break,
                }
            }
            let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
            prop_assert_eq!(listed_set.len(), listed.len(), "{} listed twice", who);
            prop_assert_eq!(&listed_set, &truth, "{} list", who);
            // The search (where the principal may search at all).
            let (status, body) = gw.get("/search?limit=100", &token);
            if status == 200 {
                let found: BTreeSet<String> = ids_of(&body["hits"]).into_iter().collect();
                prop_assert_eq!(&found, &truth, "{} search: {}", who, body);
                prop_assert_eq!(
                    body["total"].as_u64(),
                    Some(truth.len() as u64),
                    "{} search total",
                    who
                );
                prop_assert_eq!(&body["withheld"], 0, "{} search withheld", who);
            } else {
                prop_assert_eq!(status, 403, "{} search: {}", who, body);
            }
            prop_assert!(
                listed.iter().all(|id| id.starts_with(&format!("{t}-"))),
                "{} got a foreign document",
                who
            );
        }
    }
    Ok(())
}

#[test]
fn lists_and_searches_hold_exactly_what_the_decision_point_allows() {
    let gw = Gateway::start_with_documents();
    let cases: u32 = std::env::var("GATEHOUSE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 32,
        ..Config::default()
    });
    let next = AtomicUsize::new(0);
    let result = runner.run(&worlds(), |world| {
        let t = format!("prop{}", next.fetch_add(1, Ordering::SeqCst));
        check(&gw, &t, &world)
    });
    if let Err(e) = result {
        panic!(
            "{e}\n{}",
            gw.log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
