//! Helpers shared by this crate's integration tests.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A copy of the repository's policies and schema in a temporary directory, laid out like
/// the repository (so the manifest's `../schemas/...` still resolves). Returns the
/// directory guard and the copied bundle directory.
pub fn scratch_bundle() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["policies", "schemas"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
        for entry in fs::read_dir(repo().join(dir)).unwrap() {
            let entry = entry.unwrap();
            if !entry.path().is_file() {
                continue;
            }
            fs::copy(entry.path(), tmp.path().join(dir).join(entry.file_name())).unwrap();
        }
    }
    let policies = tmp.path().join("policies");
    (tmp, policies)
}
