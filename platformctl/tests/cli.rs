//! The CLI as a user runs it: output and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn platformctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platformctl"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_prints_the_bundle_id_and_succeeds() {
    let out = platformctl(&["policy", "validate", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["name"], "gatehouse-base");
    assert!(json["hash"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn the_repository_corpus_passes() {
    let out = platformctl(&["policy", "test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).trim_end().ends_with(" passed, 0 failed"));
}

#[test]
fn failing_tests_exit_1_and_show_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo().join("policy-tests/fixtures/three-tenants.json");
    let case = format!(
        "fixture = {:?}\n[[case]]\nname = \"wrong on purpose\"\nprincipal = 'User::\"acme-vera\"'\naction = \"document:delete\"\nresource = 'Document::\"acme-plan\"'\nexpect = \"allow\"\n",
        fixture.display().to_string()
    );
    std::fs::write(dir.path().join("c.toml"), case).unwrap();
    let cases = dir.path().to_str().unwrap();
    let out = platformctl(&["policy", "test", "--cases", cases]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAIL wrong on purpose"), "{text}");
    assert!(text.contains("expected allow, got deny"), "{text}");

    let out = platformctl(&["policy", "test", "--cases", cases, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed"], 1);
}

#[test]
fn an_invalid_bundle_exits_3_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["policies", "schemas"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(repo().join(sub)).unwrap() {
            let entry = entry.unwrap();
            if !entry.path().is_file() {
                continue;
            }
            std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("policies/99-bad.cedar"),
        "@id(\"bad\")\n@purpose(\"reads an unknown attribute\")\npermit (principal is User, action, resource) when { principal.nope };\n",
    )
    .unwrap();
    let bundle = dir.path().join("policies");
    let bundle = bundle.to_str().unwrap();
    for command in ["validate", "test"] {
        let out = platformctl(&["policy", command, "--bundle", bundle]);
        assert_eq!(out.status.code(), Some(3), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("99-bad.cedar:1: policy `bad`"), "{err}");
    }
    let out = platformctl(&["policy", "validate", "--bundle", bundle, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["problems"][0]["policy"], "bad");
}

#[test]
fn unreadable_cases_exit_2() {
    let out = platformctl(&["policy", "test", "--cases", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    let out = platformctl(&["policy", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn decide_answers_one_request_with_exit_0_for_allow_and_1_for_deny() {
    let fixture = "policy-tests/fixtures/three-tenants.json";
    let ask = |principal: &str, action: &str| {
        platformctl(&[
            "policy",
            "decide",
            "--entities",
            fixture,
            "--principal",
            principal,
            "--action",
            action,
            "--resource",
            r#"Document::"acme-plan""#,
        ])
    };
    let allow = ask(r#"User::"acme-vera""#, "document:read");
    assert_eq!(allow.status.code(), Some(0));
    assert_eq!(stdout(&allow).trim(), "ALLOW by [role-viewer]");
    let deny = ask(r#"User::"acme-vera""#, "document:delete");
    assert_eq!(deny.status.code(), Some(1));
    assert!(stdout(&deny).starts_with("DENY"));
    let cross = ask(r#"User::"globex-vic""#, "document:read");
    assert_eq!(stdout(&cross).trim(), "DENY by [tenant-isolation]");
    let unknown = ask(r#"User::"nobody""#, "document:read");
    assert_eq!(unknown.status.code(), Some(2), "no tenant can be derived");
}

#[test]
fn reindex_refuses_a_bad_tenant_and_an_unreachable_database_with_their_exit_codes() {
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://nobody@127.0.0.1:{refused_port}/none");
    for (tenant, code) in [("Not A Tenant", 2), ("acme", 4)] {
        let out = platformctl(&[
            "search",
            "reindex",
            "--database-url",
            &url,
            "--tenant",
            tenant,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{tenant}: {stderr}");
    }
}
