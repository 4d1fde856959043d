//! The decision API over real HTTP: AuthZEN's evaluation, evaluations and searches, and
//! Gatehouse's authorize, batch and capabilities, answered by a running `gatehouse` with
//! its entities in a real PostgreSQL, every check in the audit log.

mod common;

use common::{API_KEY, Gateway, claims};
use reqwest::Method;
use serde_json::{Value, json};

fn post(gw: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    gw.send(Method::POST, path, token, Some(body))
}

fn user(id: &str) -> Value {
    json!({ "type": "User", "id": id })
}

fn document(id: &str) -> Value {
    json!({ "type": "Document", "id": id })
}

fn evaluation(subject: Value, action: &str, resource: Value) -> Value {
    json!({ "subject": subject, "action": { "name": action }, "resource": resource })
}

#[test]
fn authzen_evaluation_answers_allow_and_deny_with_reasons_and_audits_each_check() {
    let gw = Gateway::start();
    let admin = gw.token("acme-ada", "acme");
    let (status, body) = post(
        &gw,
        &admin,
        "/access/v1/evaluation",
        evaluation(user("acme-vera"), "document:read", document("acme-plan")),
    );
    assert_eq!((status, &body), (200, &json!({ "decision": true })));

    let (status, body) = post(
        &gw,
        &admin,
        "/access/v1/evaluation",
        evaluation(user("acme-vera"), "document:delete", document("acme-plan")),
    );
    assert_eq!((status, body["decision"].as_bool()), (200, Some(false)));
    let admin_reason = body["context"]["reason_admin"]["403"].as_str().unwrap();
    assert!(
        admin_reason.contains(r#"no policy permits User::"acme-vera""#),
        "{admin_reason}"
    );
    let id = body["context"]["decision_id"].as_str().unwrap();

    // A restricted document without a second factor: the forbid's purpose, in words.
    let (_, body) = post(
        &gw,
        &admin,
        "/access/v1/evaluation",
        evaluation(user("acme-ada"), "document:read", document("acme-salaries")),
    );
    assert_eq!(body["decision"], false);
    let user_reason = body["context"]["reason_user"]["403"].as_str().unwrap();
    assert!(user_reason.to_lowercase().contains("mfa"), "{user_reason}");

    assert!(gw.audited("acme", &[id]));
    let records = gw.audit("acme");
    let denied = records
        .iter()
        .find(|r| r.record.id == id)
        .expect("the deny is audited under its decision id");
    assert_eq!(denied.record.principal, r#"User::"acme-vera""#);
    assert_eq!(denied.record.action, r#"Action::"document:delete""#);
    assert_eq!(denied.record.decision, "deny");
    assert_eq!(denied.record.route, "/access/v1/evaluation");
    assert_eq!(
        denied.record.asked_by.as_deref(),
        Some(r#"User::"acme-ada""#),
        "who asked about vera is on the record"
    );
    assert_eq!(
        gw.verify("acme").broken,
        None,
        "the chain holds with the new field"
    );
    assert!(
        records
            .iter()
            .any(|r| r.record.action == r#"Action::"pdp:evaluate""#
                && r.record.principal == r#"User::"acme-ada""#
                && r.record.decision == "allow"),
        "asking about someone else is itself decided and audited"
    );
}

#[test]
fn asking_about_others_needs_pdp_evaluate_and_questions_about_oneself_use_ones_own_credential() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let (status, body) = post(
        &gw,
        &vera,
        "/access/v1/evaluation",
        evaluation(user("acme-ed"), "document:read", document("acme-plan")),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_permitted"))
    );
    let (status, body) = post(
        &gw,
        &vera,
        "/access/v1/evaluation",
        evaluation(user("acme-vera"), "document:read", document("acme-plan")),
    );
    assert_eq!((status, body["decision"].as_bool()), (200, Some(true)));

    // The admin's own question about a restricted document: the body's `mfa` is not
    // believed, the token's is.
    let ada = gw.token("acme-ada", "acme");
    let mut question = evaluation(user("acme-ada"), "document:read", document("acme-salaries"));
    question["context"] = json!({ "mfa": true });
    let (_, body) = post(&gw, &ada, "/access/v1/evaluation", question.clone());
    assert_eq!(body["decision"], false, "no second factor in the token");
    let mut with_mfa = claims("acme-ada", "acme");
    with_mfa["amr"] = json!(["pwd", "mfa"]);
    let (_, body) = post(&gw, &gw.hs256(&with_mfa), "/access/v1/evaluation", question);
    assert_eq!(body["decision"], true);

    // A service client (API key) is an ordinary principal: acme-ed, an editor, may not ask
    // about others either.
    let (status, _) = gw.call_json(
        Method::POST,
        "/access/v1/evaluation",
        &[("x-api-key", API_KEY)],
        &evaluation(user("acme-vera"), "document:read", document("acme-plan")),
    );
    assert_eq!(status, 403);
}

#[test]
fn requests_that_cannot_be_put_to_the_policies_get_clear_errors() {
    let gw = Gateway::start();
    let admin = gw.token("acme-ada", "acme");
    let cases = [
        (
            json!({ "action": { "name": "document:read" }, "resource": document("x") }),
            400,
            "missing_field",
        ),
        (
            evaluation(
                json!({ "type": "Robot", "id": "r" }),
                "document:read",
                document("x"),
            ),
            400,
            "unknown_entity_type",
        ),
        (
            evaluation(user("acme-vera"), "document:fly", document("acme-plan")),
            400,
            "unknown_action",
        ),
        (json!("not an object"), 400, "bad_json"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = post(&gw, &admin, "/access/v1/evaluation", body.clone());
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (status, body) = gw.send(Method::GET, "/access/v1/evaluation", &admin, None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, _) = post(&gw, "", "/access/v1/evaluation", json!({}));
    assert_eq!(status, 401, "the decision API needs a credential");

    // A principal of another tenant is never allowed, whoever asks.
    let gina = gw.token("globex-gina", "globex");
    let (status, body) = post(
        &gw,
        &gina,
        "/gatehouse/v1/authorize",
        evaluation(user("acme-vera"), "document:read", document("acme-plan")),
    );
    assert_eq!(status, 200);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["errors"][0]["code"], "unknown_principal");
}

#[test]
fn evaluations_answer_in_order_with_defaults_and_short_circuits() {
    let gw = Gateway::start();
    let admin = gw.token("acme-ada", "acme");
    let batch = |semantic: &str| {
        json!({
            "subject": user("acme-vera"),
            "action": { "name": "document:read" },
            "evaluations": [
                { "resource": document("acme-plan") },
                { "resource": document("acme-salaries") },
                { "resource": document("acme-public") },
                { "resource": { "type": "Robot", "id": "r" } },
            ],
            "options": { "evaluations_semantic": semantic },
        })
    };
    let (status, body) = post(&gw, &admin, "/access/v1/evaluations", batch("execute_all"));
    assert_eq!(status, 200, "{body}");
    let decisions: Vec<Value> = body["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    assert_eq!(
        decisions,
        vec![json!(true), json!(false), json!(true), json!(false)]
    );
    assert_eq!(
        body["evaluations"][3]["context"]["error"]["code"], "unknown_entity_type",
        "a bad item is a deny that says why; the others are answered"
    );
    let (_, body) = post(
        &gw,
        &admin,
        "/access/v1/evaluations",
        batch("deny_on_first_deny"),
    );
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 2);
    let (_, body) = post(
        &gw,
        &admin,
        "/access/v1/evaluations",
        batch("permit_on_first_permit"),
    );
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 1);

    // Without evaluations, the defaults are one evaluation.
    let mut single = evaluation(user("acme-vera"), "document:read", document("acme-plan"));
    single["evaluations"] = json!([]);
    let (_, body) = post(&gw, &admin, "/access/v1/evaluations", single);
    assert_eq!(body, json!({ "decision": true }));

    let many: Vec<Value> = (0..101)
        .map(|_| json!({ "resource": document("acme-plan") }))
        .collect();
    let mut over = batch("execute_all");
    over["evaluations"] = Value::Array(many);
    let (status, body) = post(&gw, &admin, "/gatehouse/v1/authorize/batch", over);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_many_evaluations"))
    );

    // Gatehouse's batch: every check audited with its own decision id.
    let (status, body) = post(
        &gw,
        &admin,
        "/gatehouse/v1/authorize/batch",
        batch("execute_all"),
    );
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[1]["decision"], "deny");
    assert_eq!(results[3]["error"]["code"], "unknown_entity_type");
    let ids: Vec<&str> = results[..3]
        .iter()
        .map(|r| r["decision_id"].as_str().unwrap())
        .collect();
    assert!(
        gw.audited("acme", &ids),
        "every check of the batch is audited"
    );
}

#[test]
fn an_agent_gets_no_more_than_its_user_and_both_legs_are_decided_and_audited() {
    let gw = Gateway::start();
    let admin = gw.token("acme-ada", "acme");
    let agent = |id: &str| json!({ "type": "Agent", "id": id });
    // acme-bot-writer holds edit, but acts for a viewer.
    let (status, body) = post(
        &gw,
        &admin,
        "/gatehouse/v1/authorize",
        evaluation(
            agent("acme-bot-writer"),
            "document:write",
            document("acme-public"),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["delegation"]["agent"]["effect"], "allow");
    assert_eq!(body["delegation"]["user"]["effect"], "deny");
    assert_eq!(
        body["delegation"]["user"]["principal"],
        r#"User::"acme-vera""#
    );
    let reason = body["reason"]["admin"].as_str().unwrap();
    assert!(reason.contains("never gets more than the user"), "{reason}");
    let id = body["decision_id"].as_str().unwrap().to_string();

    // acme-bot-reader holds only view, for an editor.
    let (_, body) = post(
        &gw,
        &admin,
        "/gatehouse/v1/authorize",
        evaluation(
            agent("acme-bot-reader"),
            "document:write",
            document("acme-public"),
        ),
    );
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["delegation"]["user"]["effect"], "allow");
    assert!(
        body["reason"]["user"]
            .as_str()
            .unwrap()
            .contains("capability")
    );

    // Claiming the agent acts for someone else is refused.
    let mut claimed = evaluation(
        agent("acme-bot-reader"),
        "document:read",
        document("acme-public"),
    );
    claimed["subject"]["properties"] = json!({ "acting_for": "acme-ada" });
    let (_, body) = post(&gw, &admin, "/gatehouse/v1/authorize", claimed);
    assert_eq!(body["errors"][0]["code"], "delegation_mismatch");

    assert!(gw.audited("acme", &[id.as_str()]));
    let records = gw.audit("acme");
    let record = &records.iter().find(|r| r.record.id == id).unwrap().record;
    assert_eq!(record.principal, r#"Agent::"acme-bot-writer""#);
    assert_eq!(record.acting_for.as_deref(), Some(r#"User::"acme-vera""#));
}

#[test]
fn a_tool_call_is_decided_with_its_arguments() {
    let gw = Gateway::start();
    let admin = gw.token("acme-ada", "acme");
    let call = |amount: i64| {
        json!({
            "subject": { "type": "Agent", "id": "acme-bot-admin" },
            "action": { "name": "tool:invoke" },
            "resource": { "type": "Tool", "id": "acme-payments" },
            "context": { "args": { "amount": amount, "currency": "EUR" } },
        })
    };
    let (_, body) = post(&gw, &admin, "/gatehouse/v1/authorize", call(900));
    assert_eq!(body["decision"], "allow", "{body}");
    let (_, body) = post(&gw, &admin, "/gatehouse/v1/authorize", call(5000));
    assert_eq!(body["decision"], "deny");
    assert_eq!(
        body["determining_policies"],
        json!(["agent-tool-spend-limit"])
    );
    assert!(
        body["reason"]["user"]
            .as_str()
            .unwrap()
            .contains("more needs a person")
    );
    let mut silent = call(1);
    silent["context"] = json!({});
    let (_, body) = post(&gw, &admin, "/gatehouse/v1/authorize", silent);
    assert_eq!(body["decision"], "deny", "a payment must say its amount");

    let mut unknown = call(1);
    unknown["context"]["args"]["shell"] = json!("rm -rf /");
    let (_, body) = post(&gw, &admin, "/gatehouse/v1/authorize", unknown);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["errors"][0]["code"], "invalid_request", "{body}");
}

#[test]
fn capabilities_and_action_search_list_what_a_principal_may_do() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let (status, body) = post(
        &gw,
        &vera,
        "/gatehouse/v1/capabilities",
        json!({ "subject": user("acme-vera"), "resource": document("acme-roadmap") }),
    );
    assert_eq!(status, 200, "{body}");
    let allowed: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["decision"] == "allow")
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    // A viewer with an editor grant on the roadmap (confidential: no MFA needed).
    assert!(allowed.contains(&"document:read"), "{allowed:?}");
    assert!(allowed.contains(&"document:write"), "{allowed:?}");
    assert!(!allowed.contains(&"document:delete"), "{allowed:?}");

    let (_, search) = post(
        &gw,
        &vera,
        "/access/v1/search/action",
        json!({ "subject": user("acme-vera"), "resource": document("acme-roadmap") }),
    );
    let mut names: Vec<&str> = search["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut expected = allowed.clone();
    expected.sort();
    assert_eq!(
        names, expected,
        "the action search agrees with capabilities"
    );

    // Over a whole type: the reach of each action.
    let (_, body) = post(
        &gw,
        &vera,
        "/gatehouse/v1/capabilities",
        json!({ "subject": user("acme-vera"), "resource": { "type": "Document" } }),
    );
    let reach = |action: &str| {
        body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == action)
            .map(|a| a["on"].clone())
            .unwrap()
    };
    assert_eq!(reach("document:read"), "some");
    assert_eq!(reach("document:delete"), "some", "owners delete their own");
    let (_, body) = post(
        &gw,
        &gw.token("acme-aud", "acme"),
        "/gatehouse/v1/capabilities",
        json!({ "subject": user("acme-aud"), "resource": { "type": "Tenant" } }),
    );
    let find = |action: &str| {
        let actions = body["actions"].as_array().unwrap();
        actions
            .iter()
            .find(|a| a["action"] == action)
            .cloned()
            .unwrap()
    };
    // The only tenant an auditor can act on is their own.
    let audit = find("audit:read");
    assert_eq!(audit["on"], "some", "{body}");
    assert_eq!(audit["condition"], r#"resource == Tenant::"acme""#);
    assert_eq!(find("pdp:evaluate")["on"], "none");
}

#[test]
fn resource_and_subject_searches_hold_exactly_what_checks_allow_and_page_through() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let mut query = json!({
            "subject": user("acme-vera"),
            "action": { "name": "document:read" },
            "resource": { "type": "Document" },
            "page": { "limit": 2 },
        });
        if !token.is_empty() {
            query["page"]["token"] = json!(token);
        }
        let (status, body) = post(&gw, &vera, "/access/v1/search/resource", query);
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().unwrap() {
            assert_eq!(r["type"], "Document");
            found.push(r["id"].as_str().unwrap().to_string());
        }
        token = body["page"]["next_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    let mut one_by_one = Vec::new();
    for id in [
        "acme-contract",
        "acme-held-doc",
        "acme-olive-notes",
        "acme-plan",
        "acme-public",
        "acme-roadmap",
        "acme-salaries",
        "globex-shared-to-acme",
    ] {
        let (_, body) = post(
            &gw,
            &vera,
            "/access/v1/evaluation",
            evaluation(user("acme-vera"), "document:read", document(id)),
        );
        if body["decision"] == true {
            one_by_one.push(id.to_string());
        }
    }
    assert!(!found.is_empty());
    let (status, body) = post(
        &gw,
        &vera,
        "/access/v1/search/resource",
        json!({ "subject": user("acme-vera"), "action": { "name": "document:read" }, "resource": { "type": "Document" }, "page": { "limit": 0 } }),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_page_limit"))
    );
    assert_eq!(found, one_by_one);
    assert!(
        found.iter().all(|id| id.starts_with("acme-")),
        "never a foreign document"
    );

    let (status, _) = post(
        &gw,
        &vera,
        "/access/v1/search/subject",
        json!({ "subject": { "type": "User" }, "action": { "name": "document:delete" }, "resource": document("acme-plan") }),
    );
    assert_eq!(status, 403, "who else may act is a question about others");
    let (status, body) = post(
        &gw,
        &gw.token("acme-ada", "acme"),
        "/access/v1/search/subject",
        json!({ "subject": { "type": "User" }, "action": { "name": "document:delete" }, "resource": document("acme-plan") }),
    );
    assert_eq!(status, 200);
    let mut who: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, vec!["acme-ada", "acme-ed"], "the admin and the owner");
}

#[test]
fn the_authzen_metadata_names_every_endpoint_and_request_ids_are_echoed() {
    let gw = Gateway::start();
    let (status, body) = gw.get("/.well-known/authzen-configuration", "");
    assert_eq!(status, 200);
    let base = body["policy_decision_point"].as_str().unwrap().to_string();
    assert_eq!(
        body["access_evaluation_endpoint"],
        format!("{base}/access/v1/evaluation")
    );
    assert_eq!(
        body["search_action_endpoint"],
        format!("{base}/access/v1/search/action")
    );

    // The request id a client sends comes back, within bounds.
    let echoed = |request_id: &str| {
        let response = gw
            .client
            .post(format!("{}/access/v1/evaluation", gw.base))
            .bearer_auth(gw.token("acme-vera", "acme"))
            .header("x-request-id", request_id)
            .json(&evaluation(
                user("acme-vera"),
                "document:read",
                document("acme-plan"),
            ))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let echoed = response.headers().get("x-request-id");
        echoed.map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(echoed("req-42").as_deref(), Some("req-42"));

    // What a client claims is not echoed beyond its bounds.
    let (_, body) = gw.call(
        Method::GET,
        "/.well-known/authzen-configuration",
        "",
        &[
            ("host", "acme.gatehouse.test"),
            ("x-forwarded-proto", "https"),
        ],
    );
    assert_eq!(body["policy_decision_point"], "https://acme.gatehouse.test");
    let (_, body) = gw.call(
        Method::GET,
        "/.well-known/authzen-configuration",
        "",
        &[
            ("host", "evil.example"),
            ("x-forwarded-proto", "javascript://evil.example"),
        ],
    );
    assert_eq!(body["policy_decision_point"], "http://localhost");
    let long = "r".repeat(129);
    for odd in [long.as_str(), "two words"] {
        assert_eq!(echoed(odd), None, "{odd}");
    }
}

#[test]
fn agent_capabilities_are_granted_for_a_time_revoked_and_never_cached_past_either() {
    let gw = Gateway::start();
    let ed = gw.token("acme-ed", "acme");
    let grants = "/gatehouse/v1/agents/acme-bot-reader/grants";
    let (status, body) = gw.send(Method::GET, grants, &ed, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["grants"][0]["capability"], "view");
    assert_eq!(body["grants"][0]["granted_by"], "stored parent");

    // Ed grants; the admin asks (asking about the agent is asking about someone else).
    let ada = gw.token("acme-ada", "acme");
    let write = || {
        let question = evaluation(
            json!({ "type": "Agent", "id": "acme-bot-reader" }),
            "document:write",
            document("acme-public"),
        );
        post(&gw, &ada, "/gatehouse/v1/authorize", question).1["decision"].clone()
    };
    assert_eq!(write(), "deny", "view only");

    let (status, body) = post(
        &gw,
        &ed,
        grants,
        json!({ "capability": "edit", "expires_in_seconds": 2 }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["granted_by"], r#"User::"acme-ed""#);
    assert!(body["expires_at"].is_string());
    assert_eq!(write(), "allow", "granted");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(write(), "deny", "the grant expired, cached or not");

    let (status, _) = post(&gw, &ed, grants, json!({ "capability": "edit" }));
    assert_eq!(status, 201);
    assert_eq!(write(), "allow");
    let (status, body) = gw.send(Method::DELETE, &format!("{grants}/edit"), &ed, None);
    assert_eq!((status, &body), (200, &json!({ "revoked": true })));
    assert_eq!(write(), "deny", "revoked");
    let (_, body) = gw.send(Method::DELETE, &format!("{grants}/edit"), &ed, None);
    assert_eq!(body, json!({ "revoked": false }));

    // Only the agent's own user (or an admin) grants.
    let vera = gw.token("acme-vera", "acme");
    let (status, refused) = post(&gw, &vera, grants, json!({ "capability": "manage" }));
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("not_permitted"))
    );
    let (status, body) = post(&gw, &ed, grants, json!({ "capability": "root" }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_capability"))
    );
    let (status, body) = post(
        &gw,
        &ada,
        "/gatehouse/v1/agents/nobody/grants",
        json!({ "capability": "view" }),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_resource"))
    );

    // The refusal names its decision, which is audited as a deny of agent:grant.
    let message = refused["error"]["message"].as_str().unwrap();
    let id = message
        .rsplit("(decision ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert!(gw.audited("acme", &[id]), "{message}");
    let records = gw.audit("acme");
    let record = &records.iter().find(|r| r.record.id == id).unwrap().record;
    assert_eq!(record.action, r#"Action::"agent:grant""#);
    assert_eq!(record.principal, r#"User::"acme-vera""#);
    assert_eq!(record.decision, "deny");
}

fn pushed_user(id: &str, tenant: &str) -> Value {
    json!({
        "uid": { "type": "User", "id": id },
        "attrs": {
            "tenant": { "__entity": { "type": "Tenant", "id": tenant } },
            "name": id, "viewer_grants": [], "editor_grants": [], "legal_hold": false,
        },
        "parents": [{ "type": "Role", "id": "viewer" }],
    })
}

fn pushed_document(id: &str) -> Value {
    json!({
        "uid": { "type": "Document", "id": id },
        "attrs": {
            "name": id, "owner": { "__entity": { "type": "User", "id": "acme-ada" } },
            "classification": "internal", "legal_hold": false,
        },
        "parents": [{ "type": "Folder", "id": "acme-root" }],
    })
}

#[test]
fn entities_pushed_by_an_app_are_validated_decided_with_and_kept_in_their_tenant() {
    let gw = Gateway::start();
    let ada = gw.token("acme-ada", "acme");
    let push = |entities: Vec<Value>| {
        gw.send(
            Method::PUT,
            "/gatehouse/v1/entities",
            &ada,
            Some(json!({ "entities": entities })),
        )
    };
    let reads = |user_id: &str, doc: &str| {
        let question = evaluation(user(user_id), "document:read", document(doc));
        post(&gw, &ada, "/gatehouse/v1/authorize", question).1
    };
    assert_eq!(
        reads("acme-newbie", "app-doc-1")["errors"][0]["code"],
        "unknown_principal"
    );
    let (status, body) = push(vec![
        pushed_user("acme-newbie", "acme"),
        pushed_document("app-doc-1"),
    ]);
    assert_eq!((status, &body), (200, &json!({ "upserted": 2 })));
    assert_eq!(reads("acme-newbie", "app-doc-1")["decision"], "allow");
    // Each entity written is on the record, under the caller's permission.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pushed = loop {
        let records = gw.audit("acme");
        let pushed: Vec<String> = records
            .iter()
            .filter(|r| r.record.route == "PUT /gatehouse/v1/entities")
            .map(|r| r.record.resource.clone())
            .collect();
        if pushed.len() >= 2 || std::time::Instant::now() > deadline {
            break pushed;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        pushed,
        [r#"User::"acme-newbie""#, r#"Document::"app-doc-1""#]
    );

    // A whole call is refused for one bad item, and nothing of it is written.
    let mut bad = pushed_document("app-doc-2");
    bad["attrs"]["classification"] = json!(7);
    let cases = [
        (
            vec![pushed_user("acme-second", "acme"), bad],
            "invalid_entity",
        ),
        (vec![pushed_user("acme-third", "globex")], "tenant_mismatch"),
        (
            vec![json!({ "uid": { "type": "Tenant", "id": "acme" }, "attrs": {} })],
            "type_not_pushable",
        ),
        (
            vec![json!({
                "uid": { "type": "Agent", "id": "app-bot" },
                "attrs": { "name": "b", "acts_for": { "__entity": { "type": "User", "id": "acme-ed" } }, "tools": [] },
                "parents": [{ "type": "Capability", "id": "manage" }],
            })],
            "capability_via_grants",
        ),
        (
            // The same parent in Cedar's other spelling is the same parent.
            vec![json!({
                "uid": { "type": "Agent", "id": "app-bot" },
                "attrs": { "name": "b", "acts_for": { "__entity": { "type": "User", "id": "acme-ed" } }, "tools": [] },
                "parents": [{ "__entity": { "type": "Capability", "id": "manage" } }],
            })],
            "capability_via_grants",
        ),
    ];
    for (entities, code) in cases {
        let (status, body) = push(entities);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    assert_eq!(
        reads("acme-second", "acme-public")["errors"][0]["code"],
        "unknown_principal"
    );

    // The documents adapter's own documents are changed through it, not pushed over.
    let (status, body) = push(vec![pushed_document("acme-plan")]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("kept_by_adapter"))
    );

    // A deleted agent's grants go with it: an agent pushed again under its id starts bare.
    let bot = json!({
        "uid": { "type": "Agent", "id": "app-bot" },
        "attrs": { "name": "b", "acts_for": { "__entity": { "type": "User", "id": "acme-ed" } }, "tools": [] },
    });
    assert_eq!(push(vec![bot.clone()]).0, 200);
    let grants = "/gatehouse/v1/agents/app-bot/grants";
    let ed = gw.token("acme-ed", "acme");
    assert_eq!(
        post(&gw, &ed, grants, json!({ "capability": "view" })).0,
        201
    );
    let uids = json!({ "uids": [{ "type": "Agent", "id": "app-bot" }] });
    assert_eq!(
        gw.send(Method::DELETE, "/gatehouse/v1/entities", &ada, Some(uids))
            .0,
        200
    );
    assert_eq!(push(vec![bot]).0, 200);
    let (_, body) = gw.send(Method::GET, grants, &ed, None);
    assert_eq!(body["grants"], json!([]), "{body}");

    // Another tenant neither sees nor decides with acme's entities.
    let gina = gw.token("globex-gina", "globex");
    let question = evaluation(user("globex-gina"), "document:read", document("app-doc-1"));
    let (_, body) = post(&gw, &gina, "/gatehouse/v1/authorize", question);
    assert_eq!(body["errors"][0]["code"], "unknown_resource");
    let vera = gw.token("acme-vera", "acme");
    let (status, _) = gw.send(
        Method::PUT,
        "/gatehouse/v1/entities",
        &vera,
        Some(json!({ "entities": [pushed_document("app-doc-3")] })),
    );
    assert_eq!(status, 403, "pushing needs pdp:entities");

    let (status, body) = gw.send(
        Method::DELETE,
        "/gatehouse/v1/entities",
        &ada,
        Some(json!({ "uids": [{ "type": "Document", "id": "app-doc-1" }, { "type": "Document", "id": "never-was" }] })),
    );
    assert_eq!((status, &body), (200, &json!({ "deleted": 1 })));
    assert_eq!(
        reads("acme-newbie", "app-doc-1")["errors"][0]["code"],
        "unknown_resource"
    );
}
