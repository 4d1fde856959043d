//! The gateway over real HTTP: a `gatehouse` process, a real upstream, real tokens.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{API_KEY, Gateway, claims, now};
use reqwest::Method;
use serde_json::json;

#[test]
fn health_and_readiness_name_the_serving_bundle_only_on_the_metrics_listener() {
    let gw = Gateway::start();
    let (status, body) = gw.get("/healthz", "");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = gw.get("/readyz", "");
    assert_eq!(status, 200);
    assert_eq!(body["ready"], true);
    assert!(
        body.get("bundle").is_none(),
        "no bundle hash for anyone: {body}"
    );
    assert!(
        gw.serving_bundle()["hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn each_role_gets_what_its_policies_allow_and_the_upstream_gets_a_signed_context() {
    let gw = Gateway::start();
    let (status, _) = gw.get("/documents/acme-plan", &gw.token("acme-vera", "acme"));
    assert_eq!(status, 200);
    let seen = gw.upstream.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "GET /documents/acme-plan HTTP/1.1");
    let context = gw
        .verifier
        .verify(seen[0].header("x-gatehouse-context").unwrap())
        .unwrap();
    assert_eq!(context.tenant.as_str(), "acme");
    assert_eq!(context.principal, r#"User::"acme-vera""#);
    assert_eq!(context.action, r#"Action::"document:read""#);
    assert_eq!(context.resource, r#"Document::"acme-plan""#);
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the client's token stays at the gateway"
    );

    let (status, body) = gw.call(
        Method::DELETE,
        "/documents/acme-plan",
        &gw.token("acme-vera", "acme"),
        &[],
    );
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["decision_id"].as_str().unwrap().len(), 36);
    assert!(
        gw.upstream.take().is_empty(),
        "a denied request never reaches the upstream"
    );

    let (status, _) = gw.call(
        Method::DELETE,
        "/documents/acme-plan",
        &gw.token("acme-ada", "acme"),
        &[],
    );
    assert_eq!(status, 200, "an admin deletes");
    let (status, _) = gw.get("/search", &gw.token("acme-aud", "acme"));
    assert_eq!(status, 403, "an auditor does not search documents");
    let (status, _) = gw.get("/search", &gw.token("acme-ed", "acme"));
    assert_eq!(status, 200);
}

#[test]
fn a_tenant_api_key_authenticates_a_service_client() {
    let gw = Gateway::start();
    let (status, _) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        "",
        &[("x-api-key", API_KEY)],
    );
    assert_eq!(status, 200);
    let seen = gw.upstream.take();
    assert_eq!(
        seen[0].header("x-api-key"),
        None,
        "the key stays at the gateway"
    );
    let (status, body) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        "",
        &[("x-api-key", "guessed")],
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
}

#[test]
fn cross_tenant_attempts_are_refused_on_every_path() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    // The host names another tenant than the token.
    let (status, body) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        &vera,
        &[("host", "globex.gatehouse.test")],
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("tenant_mismatch"))
    );
    // Host and token agree on acme: fine.
    let (status, _) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        &vera,
        &[("host", "acme.gatehouse.test")],
    );
    assert_eq!(status, 200);
    // A globex admin asks for an acme document: it does not exist in globex.
    let (status, body) = gw.get("/documents/acme-plan", &gw.token("globex-gina", "globex"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("unknown_resource"))
    );
    // An acme user presenting a token for globex is not a globex principal.
    let (status, body) = gw.get("/documents/globex-secret", &gw.token("acme-ada", "globex"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("unknown_principal"))
    );
    // Tenants that do not exist, or are suspended.
    let (status, body) = gw.get("/documents/x", &gw.token("someone", "nosuch"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_tenant"))
    );
    let (status, body) = gw.get(
        "/documents/initech-doc",
        &gw.token("initech-ian", "initech"),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("tenant_suspended"))
    );
    // A client-chosen header names no tenant.
    let (status, _) = gw.call(
        Method::GET,
        "/documents/globex-secret",
        &vera,
        &[("x-tenant", "globex")],
    );
    assert_eq!(status, 403);
    assert_eq!(
        gw.upstream.take().len(),
        1,
        "only the one allowed request reached the upstream"
    );
}

#[test]
fn a_context_header_sent_by_the_client_is_replaced() {
    let gw = Gateway::start();
    let forged = "eyJhbGciOiJub25lIn0.eyJjdHgiOnsidGVuYW50IjoiZ2xvYmV4In19.";
    let vera = gw.token("acme-vera", "acme");
    let (status, _) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        &vera,
        &[("x-gatehouse-context", forged)],
    );
    assert_eq!(status, 200);
    let seen = gw.upstream.take();
    let values: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-gatehouse-context"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1);
    assert_ne!(values[0], forged);
    assert_eq!(
        gw.verifier.verify(values[0]).unwrap().tenant.as_str(),
        "acme"
    );
}

#[test]
fn tokens_from_the_jwks_are_accepted_for_every_algorithm() {
    let gw = Gateway::start();
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let token = gw.signed(kid, &claims("acme-vera", "acme"));
        let (status, body) = gw.get("/documents/acme-plan", &token);
        assert_eq!(status, 200, "{kid}: {body}");
    }
}

#[test]
fn tampered_expired_misdirected_and_unsigned_tokens_are_refused() {
    let gw = Gateway::start();
    let good = gw.signed("rsa-1", &claims("acme-vera", "acme"));
    let mut bad: Vec<(&str, String)> = Vec::new();

    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut payload = claims("acme-ada", "acme");
    payload["exp"] = json!(now() + 600);
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    bad.push(("payload swapped", parts.join(".")));

    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("acme-ada", "acme").to_string());
    bad.push(("alg none", format!("{header}.{body}.")));

    let mut expired = claims("acme-vera", "acme");
    expired["exp"] = json!(now() - 10);
    bad.push(("expired", gw.signed("ec-1", &expired)));

    let mut future = claims("acme-vera", "acme");
    future["nbf"] = json!(now() + 3600);
    bad.push(("not yet valid", gw.signed("ed-1", &future)));

    let mut audience = claims("acme-vera", "acme");
    audience["aud"] = json!("another-service");
    bad.push(("wrong audience", gw.signed("rsa-1", &audience)));

    let mut issuer = claims("acme-vera", "acme");
    issuer["iss"] = json!("https://evil.example");
    bad.push(("wrong issuer", gw.signed("rsa-1", &issuer)));

    // Key confusion: HS256 "signed" with the RSA public key as the secret.
    let confused = {
        let key = jsonwebtoken::EncodingKey::from_secret(&gw.keys.rsa_public_pem);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &claims("acme-ada", "acme"), &key).unwrap()
    };
    bad.push(("RS256 key used as HS256 secret", confused));
    bad.push(("garbage", "not.a.token".into()));

    for (what, token) in bad {
        let (status, body) = gw.get("/documents/acme-plan", &token);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{what}"
        );
    }
    let (status, body) = gw.get("/documents/acme-plan", "");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_credentials"))
    );
    assert!(gw.upstream.take().is_empty());
}

#[test]
fn requests_without_a_route_or_with_a_bad_id_never_pass() {
    let gw = Gateway::start();
    let ada = gw.token("acme-ada", "acme");
    let (status, body) = gw.call(Method::POST, "/documents/acme-plan", &ada, &[]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_route"))
    );
    let (status, body) = gw.get("/admin/anything", &ada);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_route"))
    );
    let (status, body) = gw.get("/documents/..%2f..%2fetc", &ada);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_resource_id"))
    );
    assert!(gw.upstream.take().is_empty());
}

#[test]
fn an_agent_is_allowed_only_what_it_and_its_user_may_do() {
    let gw = Gateway::start();
    let mut agent = claims("acme-vera", "acme");
    agent["agent"] = json!("acme-bot-writer");
    let token = gw.hs256(&agent);
    let (status, _) = gw.get("/documents/acme-plan", &token);
    assert_eq!(status, 200);
    let seen = gw.upstream.take();
    let context = gw
        .verifier
        .verify(seen[0].header("x-gatehouse-context").unwrap())
        .unwrap();
    assert_eq!(context.principal, r#"Agent::"acme-bot-writer""#);
    assert_eq!(context.acting_for.as_deref(), Some(r#"User::"acme-vera""#));
    let (status, _) = gw.call(Method::DELETE, "/documents/acme-plan", &token, &[]);
    assert_eq!(status, 403, "the agent may manage, its viewer user may not");

    let mut lying = claims("acme-ada", "acme");
    lying["agent"] = json!("acme-bot-writer");
    let (status, body) = gw.get("/documents/acme-plan", &gw.hs256(&lying));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("delegation_mismatch"))
    );
}

#[test]
fn the_trace_is_continued_upstream_and_named_in_errors() {
    let gw = Gateway::start();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let vera = gw.token("acme-vera", "acme");
    let (status, _) = gw.call(
        Method::GET,
        "/documents/acme-plan",
        &vera,
        &[("traceparent", parent)],
    );
    assert_eq!(status, 200);
    let seen = gw.upstream.take();
    let sent = seen[0].header("traceparent").unwrap();
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{sent}"
    );
    assert!(
        !sent.contains("00f067aa0ba902b7"),
        "the gateway's own span is the parent: {sent}"
    );
    let (_, body) = gw.call(
        Method::DELETE,
        "/documents/acme-plan",
        &vera,
        &[("traceparent", parent)],
    );
    assert_eq!(
        body["error"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // The log line is written after the response: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = gw.log();
        if let Some(line) = log.lines().find(|l| l.contains("\"decision\":\"deny\"")) {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "a JSON log line per request:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["fields"]["tenant"], "acme");
    assert_eq!(
        parsed["fields"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn a_bad_bundle_is_refused_while_serving_and_a_good_one_takes_over() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    let before = gw.serving_bundle()["hash"].clone();
    let policies = gw.dir.path().join("policies");

    std::fs::write(
        policies.join("90-broken.cedar"),
        "permit (principal, action, resource) when {",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        assert_eq!(
            gw.get("/documents/acme-plan", &vera).0,
            200,
            "keeps serving with the old bundle"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gw.serving_bundle()["hash"], before);
    assert!(
        gw.log().contains("refused a new bundle"),
        "the refusal is logged"
    );

    std::fs::write(
        policies.join("90-broken.cedar"),
        "@id(\"read-freeze\")\n@purpose(\"incident: nobody reads\")\nforbid (principal, action == Action::\"document:read\", resource);\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = gw.get("/documents/acme-plan", &vera);
        if status == 403 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new bundle was not picked up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(gw.serving_bundle()["hash"], before);
}

#[test]
fn one_tenants_flood_is_limited_without_touching_another_tenant() {
    let gw = Gateway::start();
    let gina = gw.token("globex-gina", "globex"); // globex is on the free plan: 5 requests/s
    let ada = gw.token("acme-ada", "acme");
    let mut limited = 0;
    let started = Instant::now();
    for _ in 0..40 {
        let response = gw
            .client
            .get(format!("{}/documents/globex-secret", gw.base))
            .bearer_auth(&gina)
            .send()
            .unwrap();
        if response.status() == 429 {
            limited += 1;
            assert_eq!(response.headers()["retry-after"], "1");
            let body: serde_json::Value = response.json().unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
        assert_eq!(
            gw.get("/documents/acme-plan", &ada).0,
            200,
            "acme is served throughout"
        );
    }
    // At most 5 per one-second window got through (+1 window for the boundaries).
    let windows = started.elapsed().as_secs() + 2;
    assert!(
        40 - limited <= 5 * windows,
        "globex got {} through in {windows} windows",
        40 - limited
    );
    assert!(limited > 0);
}

#[test]
fn metrics_count_requests_and_decisions_by_tenant() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    gw.get("/documents/acme-plan", &vera);
    gw.call(Method::DELETE, "/documents/acme-plan", &vera, &[]);
    gw.get("/documents/acme-plan", "");
    let expected = [
        r#"gatehouse_requests_total{outcome="allowed",tenant="acme"} 1"#,
        r#"gatehouse_requests_total{outcome="forbidden",tenant="acme"} 1"#,
        r#"gatehouse_requests_total{outcome="missing_credentials",tenant="-"} 1"#,
        r#"gatehouse_decisions_total{decision="deny",tenant="acme"} 1"#,
        r#"gatehouse_decision_seconds_count{tenant="acme"} 2"#,
        r#"gatehouse_upstream_seconds_count{tenant="acme"} 1"#,
        r#"gatehouse_requests_total{outcome="unknown_tenant",tenant="-"} 5"#,
        // The phases each identified request went through: the allowed read all of
        // them, the denied delete all but signing a context.
        r#"gatehouse_phase_seconds_count{phase="identify"} 2"#,
        r#"gatehouse_phase_seconds_count{phase="route"} 2"#,
        r#"gatehouse_phase_seconds_count{phase="decide"} 2"#,
        r#"gatehouse_phase_seconds_count{phase="audit_record"} 2"#,
        r#"gatehouse_phase_seconds_count{phase="audit_durable"} 2"#,
        r#"gatehouse_phase_seconds_count{phase="sign"} 1"#,
    ];
    // Tenants that do not exist name no series, however many a client makes up.
    for n in 0..5 {
        let made_up = format!("madeup{n}");
        let (status, _) = gw.get("/documents/x", &gw.token("someone", &made_up));
        assert_eq!(status, 404);
    }
    // Requests are counted in the logging phase, just after the response: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = gw.client.get(&gw.metrics).send().unwrap().text().unwrap();
        if expected.iter().all(|line| text.contains(line)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for line in expected {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("madeup"), "{text}");
}

#[test]
fn refusals_are_throttled_per_client_address_and_charged_to_no_tenant() {
    let gw = Gateway::start();
    let vera = gw.token("acme-vera", "acme");
    // Bad credentials, as fast as one client sends them (the limit: 100 a second).
    let mut throttled = None;
    for sent in 0..5_000 {
        let (status, body) = gw.get("/documents/acme-plan", "not-a-token");
        if status == 429 {
            throttled = Some((sent, body));
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    let (sent, body) = throttled.expect("an address that keeps failing is throttled");
    assert!(sent >= 100, "not before its limit: {sent}");
    assert_eq!(body["error"]["code"], "too_many_refusals", "{body}");
    assert_eq!(
        gw.get("/documents/acme-plan", &vera).0,
        429,
        "the address waits, whatever it sends"
    );

    // Another address (acme's own users among them) is served meanwhile: the refusals
    // were charged to the address, not to the tenant.
    let elsewhere = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = elsewhere
        .get(format!("{}/documents/acme-plan", gw.base))
        .bearer_auth(&vera)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    // Once it slows down, the address is served again.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(gw.get("/documents/acme-plan", &vera).0, 200);
}
