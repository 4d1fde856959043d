//! The bundle that decides right now, replaced atomically.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::bundle::{Bundle, BundleError, BundleId};

/// The current policy bundle, shared by every request and swapped atomically on reload.
///
/// A decision takes one snapshot ([`CurrentBundle::snapshot`]) and uses it to the end, so a
/// reload in the middle of a request neither drops the request nor mixes two bundles in one
/// decision. A bundle that fails to load never replaces the one serving.
#[derive(Debug)]
pub struct CurrentBundle {
    bundle: ArcSwap<Bundle>,
}

impl CurrentBundle {
    /// Starts serving `bundle`.
    pub fn new(bundle: Bundle) -> Self {
        Self {
            bundle: ArcSwap::from_pointee(bundle),
        }
    }

    /// The bundle serving now. Lock-free; hold it for one decision, not for ever.
    pub fn snapshot(&self) -> Arc<Bundle> {
        self.bundle.load_full()
    }

    /// Replaces the serving bundle with an already validated one; returns the old one.
    pub fn replace(&self, bundle: Bundle) -> Arc<Bundle> {
        self.bundle.swap(Arc::new(bundle))
    }

    /// Loads and validates the bundle in `dir` and, only if it is valid, makes it current.
    ///
    /// # Errors
    /// The [`BundleError`] of the refused bundle; the previous bundle keeps serving.
    pub fn reload(&self, dir: impl AsRef<Path>) -> Result<BundleId, BundleError> {
        let bundle = Bundle::load(dir)?;
        let id = bundle.id().clone();
        self.replace(bundle);
        Ok(id)
    }
}
