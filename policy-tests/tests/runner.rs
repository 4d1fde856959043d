//! How the runner reads case files and reports what it finds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_pdp::{Bundle, CurrentBundle, Pdp};
use gatehouse_policy_tests::{Corpus, CorpusError, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bundle() -> Bundle {
    Bundle::load(repo().join("policies")).unwrap()
}

/// Writes `body` as a case file (with the shared fixture) into a fresh directory.
fn corpus_dir(name: &str, body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo().join("policy-tests/fixtures/three-tenants.json");
    let text = format!("fixture = {:?}\n{body}", fixture.display().to_string());
    std::fs::write(dir.path().join(name), text).unwrap();
    dir
}

fn load(dir: &Path) -> Result<Corpus, CorpusError> {
    Corpus::load(dir, bundle().schema())
}

fn pdp() -> Pdp {
    Pdp::new(Arc::new(CurrentBundle::new(bundle())))
}

const VIEWER_READS: &str = r#"
[[case]]
name = "viewer reads"
principal = 'User::"acme-vera"'
action = "document:read"
resource = 'Document::"acme-plan"'
"#;

#[test]
fn a_wrong_expectation_is_reported_with_the_request_and_the_determining_policies() {
    let dir = corpus_dir(
        "c.toml",
        &format!("{VIEWER_READS}expect = \"deny\"\npolicies = [\"role-editor\"]\n"),
    );
    let corpus = load(dir.path()).unwrap();
    let report = run(&pdp(), &corpus, None);
    assert_eq!((report.passed(), report.failed()), (0, 1));
    let text = report.render(false);
    assert!(text.contains("FAIL viewer reads ("), "{text}");
    assert!(text.contains("c.toml:4)"), "the case's line: {text}");
    assert!(text.contains(r#"request:  User::"acme-vera" Action::"document:read" Document::"acme-plan" in tenant acme"#), "{text}");
    assert!(text.contains("expected deny, got allow"), "{text}");
    assert!(
        text.contains("missing determining policies: role-editor"),
        "{text}"
    );
    assert!(
        text.contains("unexpected determining policies: role-viewer"),
        "{text}"
    );
    assert!(text.contains("decided:  allow by [role-viewer]"), "{text}");
    assert!(text.ends_with("0 passed, 1 failed\n"), "{text}");
    let json = report.to_json();
    assert_eq!(json["failed"], 1);
    assert_eq!(json["cases"][0]["decision"]["effect"], "allow");
}

#[test]
fn listed_policies_are_compared_exactly_and_errors_must_be_expected() {
    let dir = corpus_dir(
        "c.toml",
        &format!("{VIEWER_READS}expect = \"allow\"\npolicies = []\n"),
    );
    let report_text = run(&pdp(), &load(dir.path()).unwrap(), None).render(false);
    assert!(
        report_text.contains("unexpected determining policies: role-viewer"),
        "{report_text}"
    );

    let unknown = VIEWER_READS.replace("acme-plan", "acme-nothing");
    let dir = corpus_dir("c.toml", &format!("{unknown}expect = \"deny\"\n"));
    let report_text = run(&pdp(), &load(dir.path()).unwrap(), None).render(false);
    assert!(
        report_text.contains("expected errors [], got [unknown_resource]"),
        "{report_text}"
    );
}

#[test]
fn a_matrix_expands_to_one_case_per_combination_and_a_filter_selects() {
    let body = r#"
[[matrix]]
name = "viewers"
principals = ['User::"acme-vera"', 'User::"acme-olive"']
actions = ["document:read", "document:version", "folder:read"]
resources = ['Document::"acme-plan"']
expect = "allow"
"#;
    let dir = corpus_dir("m.toml", body);
    let corpus = load(dir.path()).unwrap();
    assert_eq!(corpus.cases().len(), 6);
    assert_eq!(
        corpus.cases()[0].name,
        r#"viewers: User::"acme-vera" document:read Document::"acme-plan""#
    );
    // folder:read does not apply to a document: those two cases fail as invalid requests.
    let report = run(&pdp(), &corpus, None);
    assert_eq!((report.passed(), report.failed()), (4, 2));
    let only = run(&pdp(), &corpus, Some("acme-olive\" document:version"));
    assert_eq!((only.passed(), only.failed()), (1, 0));
}

#[test]
fn broken_case_files_are_located() {
    let bad_toml = corpus_dir("bad.toml", "\n[[case]]\nname = \"x\"\nprincipal = \n");
    let err = load(bad_toml.path()).unwrap_err().to_string();
    assert!(err.contains("bad.toml:5"), "{err}");

    let unknown_key = corpus_dir(
        "k.toml",
        &format!("{VIEWER_READS}expect = \"allow\"\nexpected = \"typo\"\n"),
    );
    let err = load(unknown_key.path()).unwrap_err().to_string();
    assert!(err.contains("expected"), "{err}");

    let bad_effect = corpus_dir("e.toml", &format!("{VIEWER_READS}expect = \"maybe\"\n"));
    assert!(load(bad_effect.path()).is_err());

    let bad_uid = corpus_dir(
        "u.toml",
        &format!(
            "{}expect = \"allow\"\n",
            VIEWER_READS.replace(r#"'User::"acme-vera"'"#, "'User::acme-vera'")
        ),
    );
    let err = load(bad_uid.path()).unwrap_err().to_string();
    assert!(
        err.contains("u.toml:4: viewer reads: principal: not a Cedar entity uid"),
        "{err}"
    );
}

#[test]
fn entities_are_checked_against_the_schema() {
    let body = format!(
        "{VIEWER_READS}expect = \"allow\"\nentities = [{{ uid = {{ type = \"Document\", id = \"acme-plan\" }}, attrs = {{ clasification = \"typo\" }}, parents = [] }}]\n"
    );
    let dir = corpus_dir("s.toml", &body);
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("s.toml:4: entities:"), "{err}");
    assert!(
        err.contains("clasification"),
        "the error names the attribute: {err}"
    );
}

#[test]
fn a_case_whose_principal_is_unknown_must_name_its_tenant() {
    let body = VIEWER_READS.replace("acme-vera", "nobody") + "expect = \"deny\"\n";
    let dir = corpus_dir("t.toml", &body);
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("must name its `tenant`"), "{err}");
}

#[test]
fn cedar_run_tests_files_use_the_cedar_cli_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let suite = r#"[{
        "name": "reason is a subset",
        "request": { "principal": "User::\"acme-ed\"", "action": "Action::\"document:read\"", "resource": "Document::\"acme-plan\"", "context": {} },
        "entities": ENTITIES,
        "decision": "allow", "reason": ["role-viewer"], "num_errors": 0
    }, {
        "request": { "principal": "User::\"acme-ed\"", "action": "Action::\"document:read\"", "resource": "Document::\"acme-plan\"", "context": {} },
        "entities": ENTITIES,
        "decision": "allow", "reason": ["role-admin"], "num_errors": 0
    }]"#;
    let fixture =
        std::fs::read_to_string(repo().join("policy-tests/fixtures/three-tenants.json")).unwrap();
    std::fs::write(
        dir.path().join("suite.json"),
        suite.replace("ENTITIES", &fixture),
    )
    .unwrap();
    let corpus = load(dir.path()).unwrap();
    let report = run(&pdp(), &corpus, None);
    assert!(report.outcomes[0].passed(), "{}", report.render(true));
    assert_eq!(report.outcomes[1].case.name, "test #2");
    assert_eq!(
        report.outcomes[1].mismatches,
        vec!["missing determining policies: role-admin".to_string()]
    );
}
