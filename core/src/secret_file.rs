//! Files that hold keys: created once, readable by their owner only.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Writes `contents` to a new file at `path`, mode 600 (the folders it needs created, mode
/// 700). Never overwrites: a key file that exists already is an error, not something to
/// replace. The file appears whole or not at all (written aside, then linked into
/// place), so a reader never sees it empty or half written.
///
/// # Errors
/// The I/O error, `AlreadyExists` included.
pub fn create_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let staged = staged_beside(path, contents)?;
    let linked = std::fs::hard_link(&staged, path);
    std::fs::remove_file(&staged)?;
    linked
}

/// Writes `contents` to `path` in place of what was there, mode 600 from the start (a new
/// file renamed over the old one, so nobody reads it half written or with wider rights).
///
/// # Errors
/// The I/O error.
pub fn replace_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let staged = staged_beside(path, contents)?;
    std::fs::rename(&staged, path)
}

/// A new file beside `path` (same folder, created mode 700 if missing) holding `contents`,
/// mode 600, synced.
fn staged_beside(path: &Path, contents: &[u8]) -> std::io::Result<std::path::PathBuf> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{:016x}.new", rand::random::<u64>()));
    let staged = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(staged)
}

/// Creates `dir` and the folders above it that are missing, each mode 700 (readable by
/// their owner only); folders that exist are left as they are.
///
/// Run as root, they are 711 instead: the private PostgreSQL then runs as the `postgres`
/// user, who must pass through them to its data directory (not list them; every file
/// Gatehouse keeps in them is 600).
///
/// # Errors
/// The I/O error.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(if is_root() { 0o711 } else { 0o700 })
        .create(dir)
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_secret_file_is_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        create_secret_file(&path, b"one").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = create_secret_file(&path, b"two").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
    }
}
