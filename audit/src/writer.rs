//! Writing records in batches from a background task, through a write-ahead spool.
//!
//! Requests queue records in memory ([`AuditWriter`]). Every `flush_every`, the worker
//! takes what is queued, appends it to the spool file (synced, without awaiting anything,
//! so that a task stopped at any point loses nothing), and then writes what the spool
//! holds to PostgreSQL, in transactions of `batch_max` records, and removes it. While
//! PostgreSQL is unreachable (or slower than the records arrive) the spool grows; the
//! worker keeps its unwritten part in memory, so a backlog is never read back from the
//! file while the process lives, and writes it in order and exactly once (stored ids are
//! skipped) as soon as it can. A spool left by an earlier process is read once.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_core::TenantId;

use tokio::sync::{mpsc, watch};

use crate::checkpoint::CheckpointSigner;
use crate::record::AuditRecord;
use crate::store::{AuditError, AuditStore};

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Unused bound kept for configuration compatibility: every flush takes all that is
    /// queued.
    pub batch_max: usize,
    /// How often queued records are spooled and written.
    pub flush_every: Duration,
    /// The write-ahead spool (JSON lines).
    pub spool: PathBuf,
    /// Signs the chains' heads after writes, at most once per `checkpoint_every` per tenant.
    pub checkpoints: Option<Arc<CheckpointSigner>>,
    /// How often a tenant's head is checkpointed (while it has new records).
    pub checkpoint_every: Duration,
}

/// The handle requests use: sending never blocks and never fails while the queue exists.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    sender: mpsc::UnboundedSender<AuditRecord>,
}

/// The receiving end of [`AuditWriter`]s. Cloneable: the worker drains it, and whoever
/// stops the worker can take what is left ([`AuditQueue::take_pending`]).
#[derive(Debug, Clone)]
pub struct AuditQueue {
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<AuditRecord>>>,
}

impl AuditWriter {
    /// A writer and the queue its records arrive on.
    pub fn channel() -> (Self, AuditQueue) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = AuditQueue {
            receiver: Arc::new(Mutex::new(receiver)),
        };
        (Self { sender }, queue)
    }

    /// Queues a record for writing. False only when the queue is gone.
    pub fn record(&self, record: AuditRecord) -> bool {
        self.sender.send(record).is_ok()
    }
}

impl AuditQueue {
    /// Every record queued so far (without waiting).
    pub fn take_pending(&self) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        if let Ok(mut receiver) = self.receiver.lock() {
            while let Ok(record) = receiver.try_recv() {
                out.push(record);
            }
        }
        out
    }
}

/// Drains the queue into the store; see [`AuditWorker::run`].
pub struct AuditWorker {
    queue: AuditQueue,
    store: AuditStore,
    config: WriterConfig,
    checkpointed: Mutex<HashMap<TenantId, Instant>>,
    /// The spool's records not yet in the store, in order; `None` until the spool file
    /// (which an earlier process may have left) has been read.
    unwritten: Option<Vec<AuditRecord>>,
}

impl AuditWorker {
    /// A worker writing what arrives on `queue` to `store`.
    pub fn new(queue: AuditQueue, store: AuditStore, config: WriterConfig) -> Self {
        Self {
            queue,
            store,
            config,
            checkpointed: Mutex::new(HashMap::new()),
            unwritten: None,
        }
    }

    /// Spools and writes queued records every `flush_every` until `shutdown` turns true,
    /// then once more.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        loop {
            let stop = tokio::select! {
                _ = tick.tick() => false,
                changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
            };
            self.flush().await;
            if stop {
                return;
            }
        }
    }

    async fn flush(&mut self) {
        let batch = self.queue.take_pending();
        if let Err(e) = spool(&self.config.spool, &batch) {
            // Nowhere left to put them: say so loudly, with the records themselves.
            let records: Vec<String> = batch.iter().map(AuditRecord::canonical).collect();
            tracing::error!(target: "gatehouse::audit", error = %e, records = ?records, "AUDIT RECORDS COULD NOT BE SPOOLED");
            return;
        }
        let tenants = tenants_of(&batch);
        let mut unwritten = match self.unwritten.take() {
            Some(mut unwritten) => {
                unwritten.extend(batch);
                unwritten
            }
            // The spool file holds what an earlier process left, then this batch.
            None => match read_spool(&self.config.spool) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(target: "gatehouse::audit", error = %e, "the audit spool cannot be read; it is kept");
                    return;
                }
            },
        };
        let pending = unwritten.len();
        match write_in_chunks(&self.store, &unwritten, self.config.batch_max).await {
            Ok(_) => {
                if let Err(e) = remove_spool(&self.config.spool) {
                    tracing::error!(target: "gatehouse::audit", error = %e, "the written audit spool cannot be removed; a replay will skip its records");
                }
                unwritten.clear();
                self.checkpoint(&tenants).await;
            }
            Err((written, e)) => {
                unwritten.drain(..written);
                if pending > 0 {
                    tracing::warn!(target: "gatehouse::audit", error = %e, written, pending, "audit store unavailable; records kept in the spool");
                }
            }
        }
        self.unwritten = Some(unwritten);
    }
}

/// The tenants of `records`, each once.
fn tenants_of(records: &[AuditRecord]) -> Vec<TenantId> {
    let mut tenants: Vec<TenantId> = Vec::new();
    for record in records {
        if !tenants.contains(&record.tenant) {
            tenants.push(record.tenant.clone());
        }
    }
    tenants
}

/// Writes `records` in order, `chunk` per transaction; how many were new to the store. On
/// a failure: how many records were done with before it.
async fn write_in_chunks(
    store: &AuditStore,
    records: &[AuditRecord],
    chunk: usize,
) -> Result<usize, (usize, AuditError)> {
    let (mut done, mut new) = (0, 0);
    for part in records.chunks(chunk.max(1)) {
        new += store.append(part).await.map_err(|e| (done, e))?;
        done += part.len();
    }
    Ok(new)
}

impl AuditWorker {
    /// Signs the heads of `tenants` that have not been checkpointed for
    /// `checkpoint_every`.
    async fn checkpoint(&self, tenants: &[TenantId]) {
        let Some(signer) = &self.config.checkpoints else {
            return;
        };
        let due: Vec<TenantId> = {
            let Ok(mut last) = self.checkpointed.lock() else {
                return;
            };
            let mut due: Vec<TenantId> = Vec::new();
            for tenant in tenants {
                let fresh = last
                    .get(tenant)
                    .is_some_and(|at| at.elapsed() < self.config.checkpoint_every);
                if !fresh {
                    last.insert(tenant.clone(), Instant::now());
                    due.push(tenant.clone());
                }
            }
            due
        };
        let mut checkpoints = Vec::new();
        for tenant in &due {
            if let Ok(Some((seq, hash))) = self.store.head(tenant).await {
                checkpoints.push(signer.sign(tenant, seq, &hash, crate::checkpoint_time()));
            }
        }
        if let Err(e) = signer.append(&checkpoints) {
            tracing::error!(target: "gatehouse::audit", error = %e, "audit checkpoints could not be written");
        }
    }
}

/// Appends records to the spool file at `path` and syncs it. Blocking on purpose: it
/// must not be interrupted halfway.
///
/// # Errors
/// The I/O error.
pub fn spool(path: &Path, records: &[AuditRecord]) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut lines = String::new();
    for record in records {
        lines.push_str(&record.canonical());
        lines.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(lines.as_bytes())?;
    file.sync_data()
}

/// Writes every record of the spool file at `path` to `store` (skipping those already
/// stored) and removes the file; returns how many were written. A missing file is an
/// empty spool.
///
/// # Errors
/// [`AuditError`] when the store refuses; the spool then stays as it was.
pub async fn drain_spool(store: &AuditStore, path: &Path) -> Result<usize, AuditError> {
    let records = read_spool(path)?;
    let written = write_in_chunks(store, &records, DRAIN_CHUNK)
        .await
        .map_err(|(_, e)| e)?;
    remove_spool(path)?;
    Ok(written)
}

/// Records per transaction when a spool is drained outside the worker.
const DRAIN_CHUNK: usize = 5_000;

/// The records of the spool file at `path` (none when there is no file).
fn read_spool(path: &Path) -> Result<Vec<AuditRecord>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::Spool(e.to_string())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn remove_spool(path: &Path) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AuditError::Spool(e.to_string())),
        _ => Ok(()),
    }
}
