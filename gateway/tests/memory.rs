//! Agents' memory lanes through the gateway and the documents adapter: every call decided
//! on the lane (`memory:read`, `memory:write`, `memory:search`) for the agent and for the
//! user it acts for, items kept per tenant and per lane in PostgreSQL.

mod common;

use common::{Gateway, claims};
use reqwest::Method;
use serde_json::{Value, json};

fn agent_token(gw: &Gateway, user: &str, agent: &str, tenant: &str) -> String {
    let mut c = claims(user, tenant);
    c["agent"] = json!(agent);
    gw.hs256(&c)
}

fn remember(gw: &Gateway, token: &str, lane: &str, item: Value) -> (u16, Value) {
    gw.send(
        Method::PUT,
        &format!("/memory/{lane}/item"),
        token,
        Some(item),
    )
}

#[test]
fn an_agent_remembers_reads_and_searches_only_its_own_lane() {
    let gw = Gateway::start_with_documents();
    let bot = agent_token(&gw, "acme-ed", "acme-bot-reader", "acme");
    let lane = "acme-lane-reader";
    let (status, body) = remember(
        &gw,
        &bot,
        lane,
        json!({ "key": "pref:lang", "value": "Ed prefers answers in German" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["written_by"], r#"Agent::"acme-bot-reader""#);
    let (status, _) = remember(
        &gw,
        &bot,
        lane,
        json!({ "key": "project", "value": { "name": "Apollo" }, "text": "project apollo launch plan" }),
    );
    assert_eq!(status, 200);

    let (status, body) = gw.get(&format!("/memory/{lane}/item?key=pref:lang"), &bot);
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("Ed prefers answers in German"))
    );
    let (_, body) = gw.get(&format!("/memory/{lane}/items"), &bot);
    let keys: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["pref:lang", "project"]);
    let (status, body) = gw.get(&format!("/memory/{lane}/search?q=apollo"), &bot);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["key"], "project");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // The user the lane is kept for reads it too.
    let ed = gw.token("acme-ed", "acme");
    assert_eq!(
        gw.get(&format!("/memory/{lane}/item?key=project"), &ed).0,
        200
    );

    // Another agent, another user, another tenant: denied before the adapter.
    let writer = agent_token(&gw, "acme-vera", "acme-bot-writer", "acme");
    let vera = gw.token("acme-vera", "acme");
    let foreign = agent_token(&gw, "globex-gina", "globex-bot", "globex");
    for token in [&writer, &vera, &foreign] {
        let (status, _) = gw.get(&format!("/memory/{lane}/search?q=apollo"), token);
        assert_eq!(status, 403);
        let (status, _) = remember(&gw, token, lane, json!({ "key": "x", "value": 1 }));
        assert_eq!(status, 403);
    }

    let (status, body) = remember(&gw, &bot, lane, json!({ "key": "", "value": 1 }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, body) = gw.send(
        Method::DELETE,
        &format!("/memory/{lane}/item?key=project"),
        &bot,
        None,
    );
    assert_eq!((status, &body), (200, &json!({ "deleted": true })));
    assert_eq!(
        gw.get(&format!("/memory/{lane}/item?key=project"), &bot).0,
        404
    );

    let records = gw.audit_when("acme", 6);
    let write = records
        .iter()
        .find(|r| r.record.action == r#"Action::"memory:write""# && r.record.decision == "allow")
        .expect("the write is audited");
    assert_eq!(write.record.principal, r#"Agent::"acme-bot-reader""#);
    assert_eq!(
        write.record.acting_for.as_deref(),
        Some(r#"User::"acme-ed""#)
    );
}

#[test]
fn lanes_of_different_tenants_never_share_items() {
    let gw = Gateway::start_with_documents();
    let acme = agent_token(&gw, "acme-ed", "acme-bot-reader", "acme");
    let globex = agent_token(&gw, "globex-gina", "globex-bot", "globex");
    let item = json!({ "key": "secret", "value": "the launch date" });
    assert_eq!(remember(&gw, &globex, "globex-lane", item).0, 200);
    let (_, body) = gw.get("/memory/acme-lane-reader/search?q=launch", &acme);
    assert_eq!(body["items"], json!([]));
    // The application role's own view of the table, with acme set on the transaction.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let foreign_rows: i64 = runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&gw.app_url).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM memory_items WHERE tenant_id = 'globex'")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    });
    assert_eq!(foreign_rows, 0);
}
