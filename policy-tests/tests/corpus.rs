//! The repository's policy test corpus must pass against the repository's policies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_pdp::{Bundle, CurrentBundle, Pdp};
use gatehouse_policy_tests::{Corpus, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_corpus_passes_against_the_base_bundle() {
    let bundle = Bundle::load(repo().join("policies")).unwrap_or_else(|e| panic!("{e}"));
    let corpus = Corpus::load(&repo().join("policy-tests/cases"), bundle.schema())
        .unwrap_or_else(|e| panic!("{e}"));
    let pdp = Pdp::new(Arc::new(CurrentBundle::new(bundle)));
    let report = run(&pdp, &corpus, None);
    assert!(report.failed() == 0, "\n{}", report.render(false));
    assert!(
        report.passed() >= 150,
        "the corpus must keep at least 150 cases, has {}",
        report.passed()
    );
}
