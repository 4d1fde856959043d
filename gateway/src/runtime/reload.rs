//! Hot reload: the bundle is swapped when its files change; a refused bundle leaves the
//! current one serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gatehouse_pdp::Pdp;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Reloads the bundle when its files change; a refused bundle leaves the current one.
pub struct BundleReloader {
    /// The decision point whose bundle is swapped.
    pub pdp: Arc<Pdp>,
    /// The bundle's folder.
    pub dir: PathBuf,
    /// How often the files are looked at.
    pub every: Duration,
}

#[async_trait]
impl BackgroundService for BundleReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen = fingerprint(&self.dir);
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
            }
            let now = fingerprint(&self.dir);
            if now == seen {
                continue;
            }
            seen = now;
            match self.pdp.bundle().reload(&self.dir) {
                Ok(id) => tracing::info!(target: "gatehouse::bundle", bundle = %id, "reloaded"),
                Err(e) => {
                    tracing::error!(target: "gatehouse::bundle", error = %e, "refused a new bundle; the previous one keeps serving")
                }
            }
        }
    }
}

/// Names, sizes and modification times of the bundle's files and of the schema beside it.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for folder in [dir.to_path_buf(), dir.join("../schemas")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                out.push((entry.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}
