//! The documents adapter (PostgreSQL, row-level security) behind the gateway, over real
//! HTTP, with a real PostgreSQL: the API for each role, another tenant's tokens and ids,
//! forged and replayed contexts sent straight to the adapter, SQL metacharacters and path
//! tricks in names, and row-level security checked by connecting as the application role.

mod common;

use std::time::{Duration, SystemTime};

use common::Gateway;
use gatehouse_audit::StoredRecord;
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextSigner, ForwardedContext};
use reqwest::Method;
use serde_json::{Value, json};

const FOLDER: &str = "acme-projects-2026-q4";

fn create_document(gw: &Gateway, token: &str, name: &str) -> Value {
    let (status, body) = gw.send(
        Method::POST,
        &format!("/folders/{FOLDER}/documents"),
        token,
        Some(json!({ "name": name, "tags": ["plan"] })),
    );
    assert_eq!(status, 201, "{body}");
    body
}

/// Entity changes reach the gateway's cache through NOTIFY, so a decision on something
/// just created, shared or moved may lag a moment: asks again (for at most 10 s) until
/// `done` holds for the status.
fn eventually(ask: impl Fn() -> (u16, Value), done: impl Fn(u16) -> bool) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = ask();
        if done(answer.0) || std::time::Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `path` as soon as the gateway allows it.
fn readable(gw: &Gateway, path: &str, token: &str) -> (u16, Value) {
    eventually(|| gw.get(path, token), |status| status == 200)
}

/// A write, retried while it is denied.
fn readable_send(
    gw: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    eventually(
        || gw.send(method.clone(), path, token, Some(body.clone())),
        |status| status != 403,
    )
}

/// The status of `path` once it is `want`.
fn until_status(gw: &Gateway, path: &str, token: &str, want: u16) -> u16 {
    eventually(|| gw.get(path, token), |status| status == want).0
}

#[test]
fn documents_folders_and_versions_through_the_gateway() {
    let gw = Gateway::start_with_documents();
    let editor = gw.token("acme-ed", "acme");
    let viewer = gw.token("acme-vera", "acme");

    // SQL metacharacters are data.
    let name = "Q1 plan'; DROP TABLE documents; --";
    let created = create_document(&gw, &editor, name);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], name);
    assert_eq!(created["owner_id"], "acme-ed");
    assert_eq!(created["folder_id"], FOLDER);

    // The new document exists for the policies too: the viewer reads it.
    let (status, read) = readable(&gw, &format!("/documents/{id}"), &viewer);
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["tags"], json!(["plan"]));

    // A viewer cannot write; an editor can.
    let change = json!({ "tags": ["plan", "q1"], "metadata": { "quarter": 1 } });
    let (status, _) = gw.send(
        Method::PATCH,
        &format!("/documents/{id}"),
        &viewer,
        Some(change.clone()),
    );
    assert_eq!(status, 403);
    let (status, patched) = gw.send(
        Method::PATCH,
        &format!("/documents/{id}"),
        &editor,
        Some(change),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["tags"], json!(["plan", "q1"]));
    assert_eq!(patched["metadata"]["quarter"], 1);

    // Versions: a restore is a new version.
    let (status, restored) = gw.send(
        Method::POST,
        &format!("/documents/{id}/restore"),
        &editor,
        Some(json!({ "version": 1 })),
    );
    assert_eq!(status, 201, "{restored}");
    assert_eq!(restored["version"], 2);
    assert_eq!(restored["restored_from"], 1);
    let (status, versions) = gw.get(&format!("/documents/{id}/versions"), &editor);
    assert_eq!(status, 200);
    let numbers: Vec<i64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    // Pages: by name, with a cursor, nothing twice and nothing left out.
    for n in 0..3 {
        create_document(&gw, &editor, &format!("page-{n}"));
    }
    let mut seen = Vec::new();
    let mut path = format!("/folders/{FOLDER}/documents?limit=2");
    loop {
        let (status, page) = readable(&gw, &path, &viewer);
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/folders/{FOLDER}/documents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "in name order, each once");
    for expected in ["acme-plan", "page-0", "page-1", "page-2", name] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} listed: {seen:?}"
        );
    }

    // Folders: create, rename, list, and delete with what is inside.
    let (status, folder) = gw.send(
        Method::POST,
        &format!("/folders/{FOLDER}/folders"),
        &editor,
        Some(json!({ "name": "drafts" })),
    );
    assert_eq!(status, 201, "{folder}");
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let (status, renamed) = readable_send(
        &gw,
        Method::PATCH,
        &format!("/folders/{folder_id}"),
        &editor,
        json!({ "name": "Drafts 2026" }),
    );
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Drafts 2026");
    let (status, children) = gw.get(&format!("/folders/{FOLDER}/folders"), &viewer);
    assert_eq!(status, 200);
    assert_eq!(children["items"][0]["name"], "Drafts 2026");

    // Deleting: an editor may not, an admin may.
    let admin = gw.token("acme-ada", "acme");
    let (status, _) = gw.send(Method::DELETE, &format!("/documents/{id}"), &viewer, None);
    assert_eq!(status, 403, "viewers do not delete");
    let (status, _) = gw.send(Method::DELETE, &format!("/documents/{id}"), &admin, None);
    assert_eq!(status, 204);
    let (status, gone) = gw.get(&format!("/documents/{id}"), &admin);
    assert_ne!(status, 200, "deleted: {gone}");
}

#[test]
fn bad_input_gets_a_clear_code_and_changes_nothing() {
    let gw = Gateway::start_with_documents();
    let editor = gw.token("acme-ed", "acme");
    let cases = [
        json!({ "name": "../../etc/passwd" }),
        json!({ "name": "a/b" }),
        json!({ "name": ".." }),
        json!({ "name": "" }),
        json!({ "name": "x", "classification": "top-secret" }),
        json!({ "name": "x", "tags": [""] }),
        json!({ "name": "x", "metadata": [1, 2] }),
        json!({ "name": "x", "owner_id": "acme-ada" }),
    ];
    for body in cases {
        let (status, answer) = gw.send(
            Method::POST,
            &format!("/folders/{FOLDER}/documents"),
            &editor,
            Some(body.clone()),
        );
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{body}");
    }
    let (status, answer) = gw.get(&format!("/folders/{FOLDER}/documents?limit=0"), &editor);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, answer) = gw.get(
        &format!("/folders/{FOLDER}/documents?cursor=bogus"),
        &editor,
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let (_, listed) = gw.get(&format!("/folders/{FOLDER}/documents"), &editor);
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "only acme-plan: {listed}"
    );

    // Something under legal hold deep inside a folder stops the folder's deletion (the
    // policies allow deleting the root itself; the adapter looks at the whole subtree).
    let admin = gw.token("acme-ada", "acme");
    let (status, answer) = gw.send(Method::DELETE, "/folders/acme-root", &admin, None);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("legal_hold")),
        "{answer}"
    );
    let (status, _) = gw.get("/documents/acme-held-doc", &admin);
    assert_eq!(status, 200, "still there");

    // A restricted document inside goes with its folder only in a session with MFA: every
    // document a folder's deletion removes must be permitted, or nothing is removed.
    let (status, folder) = gw.send(
        Method::POST,
        &format!("/folders/{FOLDER}/folders"),
        &admin,
        Some(json!({ "name": "payroll" })),
    );
    assert_eq!(status, 201, "{folder}");
    let payroll = folder["id"].as_str().unwrap().to_string();
    let (status, document) = gw.send(
        Method::POST,
        &format!("/folders/{payroll}/documents"),
        &admin,
        Some(json!({ "name": "salaries 2027", "classification": "restricted" })),
    );
    assert_eq!(status, 201, "{document}");
    let salaries = document["id"].as_str().unwrap().to_string();
    let (status, answer) = gw.send(Method::DELETE, &format!("/folders/{payroll}"), &admin, None);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{answer}"
    );
    let mut mfa = common::claims("acme-ada", "acme");
    mfa["amr"] = json!(["mfa"]);
    let admin_mfa = gw.hs256(&mfa);
    let (status, _) = gw.get(&format!("/documents/{salaries}"), &admin_mfa);
    assert_eq!(status, 200, "nothing was removed");
    let (status, answer) = gw.send(
        Method::DELETE,
        &format!("/folders/{payroll}"),
        &admin_mfa,
        None,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["deleted"]["documents"], 1);
}

#[test]
fn another_tenant_reaches_nothing() {
    let gw = Gateway::start_with_documents();
    let globex = gw.token("globex-gina", "globex");
    // globex's plan allows 5 requests a second here: keep under it.
    let pace = || std::thread::sleep(Duration::from_millis(250));
    for path in [
        "/documents/acme-plan",
        "/documents/acme-plan/versions",
        &format!("/folders/{FOLDER}"),
        &format!("/folders/{FOLDER}/documents"),
        &format!("/folders/{FOLDER}/folders"),
    ] {
        pace();
        let (status, body) = gw.get(path, &globex);
        assert!(status == 403 || status == 404, "{path}: {status} {body}");
        assert!(
            !body.to_string().contains("acme-ed"),
            "{path}: nothing of acme"
        );
    }
    pace();
    let (status, body) = gw.send(
        Method::POST,
        &format!("/folders/{FOLDER}/documents"),
        &globex,
        Some(json!({ "name": "planted" })),
    );
    assert!(status == 403 || status == 404, "{status} {body}");
    // The acme token on the globex host: tenant mismatch.
    let acme = gw.token("acme-ed", "acme");
    let (status, body) = gw.call(
        Method::GET,
        "/documents/globex-secret",
        &acme,
        &[("host", "globex.gatehouse.test")],
    );
    assert_eq!(status, 403, "{body}");
}

fn context(tenant: &str, action: &str, resource: &str, decision_id: &str) -> ForwardedContext {
    ForwardedContext {
        tenant: TenantId::parse(tenant).unwrap(),
        principal: format!("User::\"{tenant}-ed\""),
        acting_for: None,
        action: format!("Action::\"{action}\""),
        resource: resource.to_string(),
        decision_id: decision_id.to_string(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        mfa: false,
        source_ip: None,
    }
}

#[test]
fn the_adapter_admits_only_fresh_contexts_signed_by_the_gateway_for_the_very_call() {
    let gw = Gateway::start_with_documents();
    let adapter = gw.documents.clone().unwrap();
    let client = reqwest::blocking::Client::new();
    let signer = ContextSigner::from_pem(&gw.context_pem, Duration::from_secs(30)).unwrap();
    let forger = ContextSigner::generate(Duration::from_secs(30)).unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{adapter}{path}"));
        if let Some(token) = token {
            request = request.header(CONTEXT_HEADER, token);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let plan = r#"Document::"acme-plan""#;
    let read_plan = context("acme", "document:read", plan, "ctx-1");
    let now = SystemTime::now();
    let signed = |tenant: &str, id: &str| {
        signer
            .sign(&context(tenant, "document:read", plan, id), now)
            .unwrap()
    };
    let code =
        |(status, body): (u16, Value)| (status, body["error"]["code"].as_str().map(str::to_string));
    let refused = |status: u16, code: &str| (status, Some(code.to_string()));

    let genuine = signer.sign(&read_plan, now).unwrap();
    let (status, body) = get("/documents/acme-plan", Some(&genuine));
    assert_eq!(status, 200, "{body}");
    let cases = [
        (
            "no context",
            "/documents/acme-plan",
            None,
            refused(401, "context_missing"),
        ),
        (
            "forged",
            "/documents/acme-plan",
            Some(forger.sign(&read_plan, now).unwrap()),
            refused(401, "context_invalid"),
        ),
        (
            "expired",
            "/documents/acme-plan",
            Some(
                signer
                    .sign(&read_plan, now - Duration::from_secs(120))
                    .unwrap(),
            ),
            refused(401, "context_invalid"),
        ),
        (
            "replayed",
            "/documents/acme-plan",
            Some(genuine),
            refused(401, "context_replayed"),
        ),
        // A context for one document opens no other, and no other action.
        (
            "another document",
            "/documents/acme-roadmap",
            Some(signed("acme", "ctx-2")),
            refused(403, "context_mismatch"),
        ),
        (
            "another action",
            "/documents/acme-plan/versions",
            Some(signed("acme", "ctx-3")),
            refused(403, "context_mismatch"),
        ),
        // Another tenant's context naming acme's document: its queries see only globex.
        (
            "another tenant",
            "/documents/acme-plan",
            Some(signed("globex", "ctx-4")),
            refused(404, "not_found"),
        ),
    ];
    for (what, path, token, expected) in cases {
        let answer = get(path, token.as_deref());
        assert!(
            !answer.1.to_string().contains("acme-ed"),
            "{what}: nothing of acme"
        );
        assert_eq!(code(answer), expected, "{what}");
    }
}

#[test]
fn row_level_security_holds_for_the_application_role_itself() {
    let gw = Gateway::start_with_documents();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&gw.app_url).await.unwrap();
        let count = |sql: &'static str, tenant: Option<&'static str>| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                if let Some(tenant) = tenant {
                    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                        .bind(tenant)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
                n
            }
        };
        for table in ["SELECT count(*) FROM documents", "SELECT count(*) FROM folders", "SELECT count(*) FROM document_versions", "SELECT count(*) FROM agent_grants", "SELECT count(*) FROM memory_items"] {
            assert_eq!(count(table, None).await, 0, "no tenant set: {table} shows nothing");
        }
        assert_eq!(count("SELECT count(*) FROM documents WHERE tenant_id = 'acme'", Some("globex")).await, 0);
        assert!(count("SELECT count(*) FROM documents", Some("acme")).await >= 7);

        // Writing a row for another tenant than the one set is refused.
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)").execute(&mut *tx).await.unwrap();
        let planted = sqlx::query(
            "INSERT INTO folders (tenant_id, id, name, path, owner_id) VALUES ('globex', 'planted', 'x', '/planted/', 'acme-ed')",
        )
        .execute(&mut *tx)
        .await
        .unwrap_err();
        let code = planted.as_database_error().and_then(|e| e.code()).map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{planted}");
        drop(tx);

        // "Everything under folder F" is one range scan of the path index, once there are
        // enough documents for an index to matter (rolled back afterwards).
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)").execute(&mut *tx).await.unwrap();
        sqlx::query(
            "INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id) \
             SELECT 'acme', 'bulk-' || g, 'acme-root', '/acme-root/f' || (g % 100) || '/', 'n' || g, 'acme-ed' \
             FROM generate_series(1, 20000) g",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT id FROM documents WHERE tenant_id = 'acme' AND path ~>=~ '/acme-root/f7/' AND path ~<~ '/acme-root/f70'",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let plan = plan.join("\n");
        // The range is an index condition, not a filter applied after the policy.
        let index_condition = plan.lines().find(|l| l.contains("Index Cond")).unwrap_or_default();
        assert!(plan.contains("documents_path") && index_condition.contains("~>=~"), "{plan}");
    });
}

#[test]
fn sharing_to_users_and_groups_changes_who_may_read_and_write() {
    let gw = Gateway::start_with_documents();
    let admin = gw.token("acme-ada", "acme");
    let sam = gw.token("acme-sam", "acme");
    assert_eq!(
        gw.get("/documents/acme-plan", &sam).0,
        403,
        "no role, no grant"
    );

    let grant = json!({ "type": "User", "id": "acme-sam", "role": "viewer" });
    let (status, share) = gw.send(
        Method::POST,
        "/documents/acme-plan/shares",
        &admin,
        Some(grant.clone()),
    );
    assert_eq!(status, 201, "{share}");
    assert_eq!(
        until_status(&gw, "/documents/acme-plan", &sam, 200),
        200,
        "shared"
    );
    let (status, _) = gw.send(
        Method::PATCH,
        "/documents/acme-plan",
        &sam,
        Some(json!({ "tags": ["x"] })),
    );
    assert_eq!(status, 403, "a viewer grant does not let one write");
    let (status, again) = gw.send(
        Method::POST,
        "/documents/acme-plan/shares",
        &admin,
        Some(grant),
    );
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (_, listed) = gw.get("/documents/acme-plan/shares", &admin);
    assert_eq!(listed["items"][0]["grantee_id"], "acme-sam");

    let (status, _) = gw.send(
        Method::DELETE,
        "/documents/acme-plan/shares?type=User&id=acme-sam&role=viewer",
        &admin,
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(
        until_status(&gw, "/documents/acme-plan", &sam, 403),
        403,
        "revoked"
    );

    // A group's editor grant on a folder reaches its members, for everything inside.
    let nora = gw.token("acme-nora", "acme");
    let edit = json!({ "tags": ["reviewed"] });
    let (status, _) = gw.send(
        Method::PATCH,
        "/documents/acme-olive-notes",
        &nora,
        Some(edit.clone()),
    );
    assert_eq!(status, 403, "before the grant");
    let group = json!({ "type": "Group", "id": "acme-legal", "role": "editor" });
    let (status, body) = gw.send(
        Method::POST,
        "/folders/acme-olive-folder/shares",
        &admin,
        Some(group),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = readable_send(
        &gw,
        Method::PATCH,
        "/documents/acme-olive-notes",
        &nora,
        edit,
    );
    assert_eq!(status, 200, "{body}");

    // Grantees are of this tenant only; input is checked.
    for (grantee, code) in [
        (
            json!({ "type": "User", "id": "globex-vic", "role": "viewer" }),
            "not_found",
        ),
        (
            json!({ "type": "Robot", "id": "acme-sam", "role": "viewer" }),
            "invalid_input",
        ),
        (
            json!({ "type": "User", "id": "acme-sam", "role": "owner" }),
            "invalid_input",
        ),
    ] {
        let (_, body) = gw.send(
            Method::POST,
            "/documents/acme-plan/shares",
            &admin,
            Some(grantee),
        );
        assert_eq!(body["error"]["code"], code);
    }

    // An external link: its token is shown once and names the tenant.
    let (status, link) = gw.send(
        Method::POST,
        "/documents/acme-plan/links",
        &admin,
        Some(json!({ "expires_in_seconds": 3600 })),
    );
    assert_eq!(status, 201, "{link}");
    assert!(link["token"].as_str().unwrap().starts_with("acme."));
    let (status, _) = gw.send(
        Method::POST,
        "/documents/acme-plan/links",
        &admin,
        Some(json!({ "expires_in_seconds": 365 * 24 * 3600 })),
    );
    assert_eq!(status, 400, "links live at most 30 days");
}

#[test]
fn comments_name_the_tenants_users_they_mention() {
    let gw = Gateway::start_with_documents();
    let editor = gw.token("acme-ed", "acme");
    let viewer = gw.token("acme-vera", "acme");
    let text = "@acme-vera please look; @globex-gina and @nobody are not ours, nor ed@acme.example";
    let (status, comment) = gw.send(
        Method::POST,
        "/documents/acme-plan/comments",
        &editor,
        Some(json!({ "body": text })),
    );
    assert_eq!(status, 201, "{comment}");
    assert_eq!(comment["mentions"], json!(["acme-vera"]));
    assert_eq!(comment["author_id"], "acme-ed");
    let (status, _) = gw.send(
        Method::POST,
        "/documents/acme-plan/comments",
        &viewer,
        Some(json!({ "body": "me too" })),
    );
    assert_eq!(status, 403, "viewers read comments, they do not write them");
    let (status, listed) = gw.get("/documents/acme-plan/comments", &viewer);
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["body"], text);
    let (status, _) = gw.send(
        Method::POST,
        "/documents/acme-plan/comments",
        &editor,
        Some(json!({ "body": "" })),
    );
    assert_eq!(status, 400);
}

#[test]
fn moves_and_bulk_calls_decide_and_audit_every_folder_they_touch() {
    let gw = Gateway::start_with_documents();
    let nora = gw.token("acme-nora", "acme"); // an editor grant on acme-legal only
    let admin = gw.token("acme-ada", "acme");

    // Nora may edit the contract, but not put it where she may not create.
    let (status, body) = gw.send(
        Method::PATCH,
        "/documents/acme-contract",
        &nora,
        Some(json!({ "folder_id": "acme-projects" })),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, moved) = gw.send(
        Method::PATCH,
        "/documents/acme-contract",
        &nora,
        Some(json!({ "folder_id": "acme-legal" })),
    );
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["folder_id"], "acme-legal");

    // A folder never moves into itself.
    let (status, body) = gw.send(
        Method::PATCH,
        "/folders/acme-projects",
        &admin,
        Some(json!({ "parent_id": "acme-projects-2026-q4" })),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    // Moving a subtree under acme-legal brings its documents under Nora's grant.
    assert_eq!(gw.get("/documents/acme-plan", &nora).0, 403);
    let (status, body) = gw.send(
        Method::PATCH,
        "/folders/acme-projects-2026",
        &admin,
        Some(json!({ "parent_id": "acme-legal" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parent_id"], "acme-legal");
    assert_eq!(until_status(&gw, "/documents/acme-plan", &nora, 200), 200);
    let (_, listed) = gw.get("/folders/acme-legal/folders", &admin);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "acme-projects-2026")
    );

    // Bulk: each item decided on its own.
    let (status, body) = gw.send(
        Method::POST,
        "/folders/acme-root/bulk-delete",
        &admin,
        Some(json!({ "documents": ["acme-public", "acme-held-doc", "no-such-doc", "globex-secret"] })),
    );
    assert_eq!(status, 200, "{body}");
    let results: Vec<(String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().into(),
                o["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("acme-public".into(), "deleted".into()),
            ("acme-held-doc".into(), "forbidden".into()),
            ("no-such-doc".into(), "forbidden".into()),
            ("globex-secret".into(), "forbidden".into()),
        ]
    );
    assert_ne!(gw.get("/documents/acme-public", &admin).0, 200);
    assert_eq!(gw.get("/documents/acme-held-doc", &admin).0, 200);

    let (status, body) = gw.send(
        Method::POST,
        "/folders/acme-legal/bulk-move",
        &nora,
        Some(json!({ "documents": ["acme-olive-notes", "acme-contract"] })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"][0]["result"], "forbidden",
        "not Nora's to move"
    );
    assert_eq!(body["items"][1]["result"], "moved");

    // The adapter's own decisions are in the audit log like the gateway's.
    let held = |r: &StoredRecord| {
        r.record.route == "adapter:documents"
            && r.record.resource == r#"Document::"acme-held-doc""#
            && r.record.decision == "deny"
    };
    let created = |r: &StoredRecord| {
        r.record.route == "adapter:documents"
            && r.record.resource == r#"Folder::"acme-projects""#
            && r.record.action == r#"Action::"folder:create""#
    };
    let records = gw.audit_until("acme", |records| {
        records.iter().any(held) && records.iter().any(created)
    });
    assert!(records.iter().any(held), "{records:?}");
    assert!(records.iter().any(created), "{records:?}");
}

#[test]
fn a_share_link_reads_its_one_document_until_it_expires() {
    let gw = Gateway::start_with_documents();
    let admin = gw.token("acme-ada", "acme");
    let (status, link) = gw.send(
        Method::POST,
        "/documents/acme-plan/links",
        &admin,
        Some(json!({ "expires_in_seconds": 3600 })),
    );
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap().to_string();
    let with_link = |method: Method, path: &str, token: &str, host: Option<&str>| {
        let authorization = format!("ShareLink {token}");
        let mut headers = vec![("authorization", authorization.as_str())];
        if let Some(host) = host {
            headers.push(("host", host));
        }
        gw.call(method, path, "", &headers)
    };

    let (status, body) = with_link(Method::GET, "/documents/acme-plan", &token, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "acme-plan");
    let (status, _) = with_link(Method::GET, "/documents/acme-roadmap", &token, None);
    assert_eq!(status, 403, "only its own document");
    let (status, _) = with_link(Method::PATCH, "/documents/acme-plan", &token, None);
    assert_eq!(status, 403, "read only");
    let (status, body) = with_link(
        Method::GET,
        "/documents/acme-plan",
        &token,
        Some("globex.gatehouse.test"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("tenant_mismatch"))
    );

    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        tampered.as_str(),
        "acme.no-such-link.secret",
        "garbage",
        "globex.x.y",
    ] {
        let (status, body) = with_link(Method::GET, "/documents/acme-plan", bad, None);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{bad}"
        );
    }

    // A link past its expiry is refused before any policy runs (the policies check the
    // expiry of the link's entity too).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expired = runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&gw.app_url).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)").execute(&mut *tx).await.unwrap();
        let id: String = sqlx::query_scalar("SELECT id FROM share_links LIMIT 1").fetch_one(&mut *tx).await.unwrap();
        let token = format!("acme.{id}.expired-secret");
        use sha2::Digest;
        sqlx::query("UPDATE share_links SET token_sha256 = $1, expires_at = now() - interval '1 second' WHERE id = $2")
            .bind(format!("{:x}", sha2::Sha256::digest(token.as_bytes())))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        token
    });
    let (status, body) = with_link(Method::GET, "/documents/acme-plan", &expired, None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
}

#[test]
fn contents_are_uploaded_encrypted_and_downloaded_through_the_gateway() {
    let gw = Gateway::start_with_documents();
    let editor = gw.token("acme-ed", "acme");
    let viewer = gw.token("acme-vera", "acme");
    let put = |path: &str, token: &str, content_type: &str, body: Vec<u8>| {
        let response = gw
            .client
            .put(format!("{}{path}", gw.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let fetch = |path: &str, token: &str| {
        let response = gw
            .client
            .get(format!("{}{path}", gw.base))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        (status, content_type, response.bytes().unwrap().to_vec())
    };

    // 12 MiB: more than one S3 part, streamed through the gateway both ways.
    let marker = b"QUARTERLY-PLAN-MARKER ";
    let content: Vec<u8> = marker.iter().copied().cycle().take(12 << 20).collect();
    let (status, stored) = put(
        "/documents/acme-plan/content",
        &editor,
        "text/plain; charset=utf-8",
        content.clone(),
    );
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["size_bytes"], 12 << 20);
    let (status, content_type, body) = fetch("/documents/acme-plan/content", &viewer);
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/plain"));
    assert!(body == content, "the same bytes back");

    // An uploaded page never runs on the gateway's origin.
    let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    assert_eq!(
        put("/documents/acme-public/content", &editor, "text/html", page).0,
        201
    );
    let served = gw
        .client
        .get(format!("{}/documents/acme-public/content", gw.base))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    let headers = served.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-disposition"], "attachment");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );

    // At rest there is only ciphertext.
    let s3 = gw.dir.path().join("s3");
    let mut at_rest = 0;
    let mut dirs = vec![s3.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(marker.len()).any(|w| w == marker),
                    "plaintext at rest in {}",
                    path.display()
                );
                at_rest += bytes.len();
            }
        }
    }
    assert!(at_rest >= 12 << 20, "the object is there, sealed");

    // A second upload is version 3; restoring version 2 brings the first content back.
    let (status, _) = put(
        "/documents/acme-plan/content",
        &editor,
        "text/markdown",
        b"# new".to_vec(),
    );
    assert_eq!(status, 201);
    assert_eq!(fetch("/documents/acme-plan/content", &viewer).2, b"# new");
    let (status, _) = gw.send(
        Method::POST,
        "/documents/acme-plan/restore",
        &editor,
        Some(json!({ "version": 2 })),
    );
    assert_eq!(status, 201);
    assert!(fetch("/documents/acme-plan/content", &viewer).2 == content);

    // Refusals: a viewer writing, an unsupported type, another tenant, a document without
    // content, and the free plan's size limit (globex).
    assert_eq!(
        put(
            "/documents/acme-plan/content",
            &viewer,
            "text/plain",
            b"x".to_vec()
        )
        .0,
        403
    );
    let (status, body) = put(
        "/documents/acme-plan/content",
        &editor,
        "image/png",
        b"x".to_vec(),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let globex = gw.token("globex-eve", "globex");
    assert_eq!(fetch("/documents/acme-plan/content", &globex).0, 403);
    let (status, _, body) = fetch(
        "/documents/acme-roadmap/content",
        &gw.token("acme-ada", "acme"),
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, body) = put(
        "/documents/globex-secret/content",
        &globex,
        "text/plain",
        vec![b'x'; 3000],
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (status, body) = put(
        "/documents/globex-secret/content",
        &globex,
        "text/plain",
        vec![b'x'; 1000],
    );
    assert_eq!(status, 201, "under the free plan's limit: {body}");
}

/// Uploads `body` as the content of document `id`.
fn upload(gw: &Gateway, id: &str, token: &str, content_type: &str, body: &str) {
    let response = gw
        .client
        .put(format!("{}/documents/{id}/content", gw.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "upload of {id}");
}

/// `GET /search?{query}` once `done` holds for its answer (the index follows the
/// database asynchronously), or the last answer after 20 s.
fn search_until(gw: &Gateway, token: &str, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = gw.get(&format!("/search?{query}"), token);
        assert_eq!(status, 200, "{body}");
        if done(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hit_ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn search_finds_contents_within_the_tenant_and_only_what_the_reader_may_read() {
    let gw = Gateway::start_with_documents();
    let (editor, viewer, admin) = (
        gw.token("acme-ed", "acme"),
        gw.token("acme-vera", "acme"),
        gw.token("acme-ada", "acme"),
    );
    upload(
        &gw,
        "acme-plan",
        &editor,
        "text/markdown",
        "# Heron plan\n\nThe *zephyr* project starts.",
    );
    upload(
        &gw,
        "acme-public",
        &admin,
        "text/html",
        "<p>zephyr brochure</p><script>var hiddenword = 1</script>",
    );
    // A document that becomes restricted: readable only with MFA, so withheld from Vera.
    let secret = create_document(&gw, &editor, "Zephyr salaries");
    let secret_id = secret["id"].as_str().unwrap().to_string();
    readable(&gw, &format!("/documents/{secret_id}"), &editor);
    upload(
        &gw,
        &secret_id,
        &editor,
        "text/plain",
        "zephyr payroll figures",
    );
    let (status, body) = gw.send(
        Method::PATCH,
        &format!("/documents/{secret_id}"),
        &editor,
        Some(json!({ "classification": "restricted" })),
    );
    assert_eq!(status, 200, "{body}");

    // Once indexed: three match, but the reader's policy is part of the query: the
    // restricted one is not a hit, not counted and not in the facets; the rest come back
    // as the database has them now.
    let answer = search_until(&gw, &viewer, "q=zephyr", |a| {
        a["total"] == 2 && a["hits"].as_array().is_some_and(|h| h.len() == 2)
    });
    assert_eq!(answer["total"], 2, "{answer}");
    assert_eq!(answer["filtering"], "compiled", "{answer}");
    assert_eq!(hit_ids(&answer), ["acme-plan", "acme-public"], "{answer}");
    assert_eq!(answer["withheld"], 0);
    let owners = answer["facets"]["owner"].as_object().unwrap();
    assert_eq!(
        owners.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        2,
        "{answer}"
    );
    // With MFA the restricted one is readable, so it is found and counted.
    let mut mfa = common::claims("acme-vera", "acme");
    mfa["amr"] = json!(["mfa"]);
    let with_mfa = search_until(&gw, &gw.hs256(&mfa), "q=zephyr", |a| a["total"] == 3);
    assert_eq!(with_mfa["total"], 3, "{with_mfa}");
    let plan = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "acme-plan")
        .unwrap();
    assert_eq!(plan["type"], "markdown");
    assert_eq!(plan["content_type"], "text/markdown");
    assert!(plan["score"].as_f64().unwrap() > 0.0);
    assert_eq!(answer["facets"]["type"]["markdown"], 1);

    // Text hidden in a script is not text; filters narrow; a subtree is one filter.
    let hidden = search_until(&gw, &viewer, "q=hiddenword", |_| true);
    assert_eq!(hidden["total"], 0);
    let markdown = search_until(&gw, &viewer, "q=zephyr&type=markdown", |_| true);
    assert_eq!(hit_ids(&markdown), ["acme-plan"]);
    let projects = search_until(&gw, &viewer, "q=zephyr&folder=acme-projects", |_| true);
    assert_eq!(hit_ids(&projects), ["acme-plan"], "{projects}");
    let by_owner = search_until(&gw, &viewer, "owner=acme-ed&q=heron", |_| true);
    assert_eq!(hit_ids(&by_owner), ["acme-plan"]);

    // Another tenant finds none of it; a principal without search finds nothing at all.
    let globex = search_until(&gw, &gw.token("globex-gina", "globex"), "q=zephyr", |_| {
        true
    });
    assert_eq!(
        (globex["total"].clone(), hit_ids(&globex).len()),
        (json!(0), 0)
    );
    let (status, _) = gw.get("/search?q=zephyr", &gw.token("acme-gus", "acme"));
    assert_eq!(status, 403);

    // A misspelt filter is refused, not ignored.
    let (status, body) = gw.get("/search?q=zephyr&tags=x", &viewer);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input")),
        "{body}"
    );

    // A delete reaches the index and the object store.
    let (status, body) = gw.send(Method::DELETE, "/documents/acme-plan", &admin, None);
    assert_eq!(status, 204, "{body}");
    let after = search_until(&gw, &viewer, "q=heron", |a| a["total"] == 0);
    assert_eq!(after["total"], 0, "{after}");
    let objects = gw
        .dir
        .path()
        .join("s3")
        .join("gatehouse")
        .join("tenants/acme/documents/acme-plan");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stored = || {
        std::fs::read_dir(&objects)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    while stored() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stored(),
        0,
        "the deleted document's objects are gone from the store"
    );
}

/// Documents built byte by byte, decompression bombs among them (shared with the search
/// adapter's tests).
#[path = "../../adapters/search/tests/common/mod.rs"]
mod files;

#[test]
fn a_decompression_bomb_is_quarantined_and_the_gateway_serves_on() {
    let gw = Gateway::start_with_documents();
    let (editor, admin) = (gw.token("acme-ed", "acme"), gw.token("acme-ada", "acme"));
    // A few kilobytes that inflate to 2 GiB: without bounds, the gateway itself would grow
    // past every limit, and again at each restart.
    let bomb = files::pdf_bomb(2);
    let response = gw
        .client
        .put(format!("{}/documents/acme-plan/content", gw.base))
        .bearer_auth(&editor)
        .header("content-type", "application/pdf")
        .body(bomb)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    // An ordinary PDF after it: extracted by the same bounded child (`gatehouse
    // extract-text`), and found by its words.
    let response = gw
        .client
        .put(format!("{}/documents/acme-public/content", gw.base))
        .bearer_auth(&admin)
        .header("content-type", "application/pdf")
        .body(files::pdf("zephyr brochure"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);

    // The outbox takes jobs in order: once the second is found, the first was dealt with.
    let answer = search_until(&gw, &editor, "q=zephyr", |a| a["total"] == 1);
    assert_eq!(hit_ids(&answer), ["acme-public"], "{answer}");
    let texts = std::process::Command::new("psql")
        .arg(&gw.app_url)
        .args([
            "-Atc",
            "SET app.tenant_id = 'acme'; SELECT document_id, status, attempts, error FROM document_texts",
        ])
        .output()
        .unwrap();
    let texts = String::from_utf8_lossy(&texts.stdout);
    assert!(
        texts.contains("acme-plan|quarantined|1|") && texts.contains("acme-public|done|1|"),
        "the bomb is quarantined, the PDF after it extracted:\n{texts}"
    );
    let (status, _) = gw.get("/documents/acme-plan", &editor);
    assert_eq!(status, 200, "the gateway serves on");
}

#[test]
fn an_adapter_closes_a_connection_that_never_finishes_its_request_head() {
    use std::io::{Read as _, Write as _};
    let gw = Gateway::start_with_documents();
    let adapter = gw.documents.as_ref().unwrap().trim_start_matches("http://");
    let mut slow = std::net::TcpStream::connect(adapter).unwrap();
    // Half a request head, then nothing more.
    slow.write_all(b"GET /documents/acme-plan HTTP/1.1\r\nHost: adapter\r\n")
        .unwrap();
    // Bounded only so that a connection left open fails the test instead of hanging it.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let closed = slow.read_to_end(&mut answer);
    assert!(
        closed.is_ok(),
        "the adapter kept the half-open request: {closed:?}"
    );
    // hyper answers a head that timed out with a bare 408, or just closes.
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}
