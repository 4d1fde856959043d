//! Writing records in batches from a background task, through a write-ahead spool.
//!
//! Requests queue records in memory ([`AuditWriter`]). Every `flush_every`, the worker
//! takes what is queued, appends it to the spool file (synced, without awaiting anything,
//! so that a task stopped at any point loses nothing), and then writes what the spool
//! holds to PostgreSQL, in transactions of `batch_max` records, and removes it. While
//! PostgreSQL is unreachable (or slower than the records arrive) the spool grows, and the
//! worker writes it in order and exactly once (stored ids are skipped) as soon as it can.
//! It keeps the next `memory_max` unwritten records in memory, so a short backlog is never
//! read back from the file, and a long one (an outage of hours) costs disk, not memory:
//! it is read back from the file a window at a time. A spool left by an earlier process
//! is read the same way.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_core::TenantId;

use tokio::sync::{mpsc, watch};

use crate::checkpoint::CheckpointSigner;
use crate::database::{AuditError, AuditStore};
use crate::record::AuditRecord;

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records per transaction, at most.
    pub batch_max: usize,
    /// Unwritten records held in memory, at most; the rest wait in the spool file only.
    /// Also the most one flush writes, so that records queued meanwhile are spooled soon.
    pub memory_max: usize,
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
    /// Where the spool file stands; `None` until the file (which an earlier process may
    /// have left) has been read.
    backlog: Option<Backlog>,
}

/// The spool file's lines are records in order: first those already in the store, then
/// the unwritten ones, whose first few are also held in memory (the window).
#[derive(Debug, Default)]
struct Backlog {
    /// Lines in the file.
    lines: usize,
    /// Leading lines already in the store (or unreadable).
    written: usize,
    /// Records of the lines from `written` on: all of them, or the first `memory_max`.
    window: Vec<AuditRecord>,
    /// The line of each record of the window.
    window_lines: Vec<usize>,
}

impl Backlog {
    /// Whether the window holds every unwritten line.
    fn reaches_the_end(&self) -> bool {
        self.window_lines
            .last()
            .map_or(self.written, |line| line + 1)
            == self.lines
    }

    fn hold(&mut self, line: usize, record: AuditRecord) {
        self.window.push(record);
        self.window_lines.push(line);
    }

    /// Counts a batch just appended to the file, and holds what fits of it in memory.
    fn appended(&mut self, batch: Vec<AuditRecord>, memory_max: usize) {
        let room = if self.reaches_the_end() {
            memory_max.saturating_sub(self.window.len())
        } else {
            0
        };
        let first = self.lines;
        self.lines += batch.len();
        for (i, record) in batch.into_iter().take(room).enumerate() {
            self.hold(first + i, record);
        }
    }

    /// Marks the first `count` records of the window written.
    fn wrote(&mut self, count: usize) {
        let count = count.min(self.window.len());
        if count == 0 {
            return;
        }
        self.written = match self.window_lines.get(count) {
            Some(line) => *line,
            None => self.window_lines[count - 1] + 1,
        };
        self.window.drain(..count);
        self.window_lines.drain(..count);
    }

    /// Whether every line of the file is in the store.
    fn is_done(&self) -> bool {
        self.written >= self.lines
    }
}

impl AuditWorker {
    /// A worker writing what arrives on `queue` to `store`.
    pub fn new(queue: AuditQueue, store: AuditStore, config: WriterConfig) -> Self {
        Self {
            queue,
            store,
            config,
            checkpointed: Mutex::new(HashMap::new()),
            backlog: None,
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
        if self.backlog.is_none()
            && let Err(e) = end_torn_line(&self.config.spool)
        {
            tracing::error!(target: "gatehouse::audit", error = %e, "the audit spool left by an earlier process cannot be mended");
        }
        if let Err(e) = spool(&self.config.spool, &batch) {
            // Nowhere left to put them: say so loudly, with the records themselves.
            let records: Vec<String> = batch.iter().map(AuditRecord::canonical).collect();
            tracing::error!(target: "gatehouse::audit", error = %e, records = ?records, "AUDIT RECORDS COULD NOT BE SPOOLED");
            return;
        }
        let tenants = tenants_of(&batch);
        let memory_max = self.config.memory_max.max(1);
        let mut backlog = match self.backlog.take() {
            Some(mut backlog) => {
                backlog.appended(batch, memory_max);
                backlog
            }
            // The spool file holds what an earlier process left, then this batch.
            None => Backlog::default(),
        };
        if backlog.window.is_empty()
            && let Err(e) = read_window(&self.config.spool, &mut backlog, memory_max)
        {
            tracing::error!(target: "gatehouse::audit", error = %e, "the audit spool cannot be read; it is kept");
            return;
        }
        match write_window(&self.store, &mut backlog, self.config.batch_max).await {
            Err(e) => {
                let pending = backlog.lines - backlog.written;
                tracing::warn!(target: "gatehouse::audit", error = %e, pending, "audit store unavailable; records kept in the spool");
            }
            Ok(()) if backlog.is_done() => {
                if let Err(e) = remove_spool(&self.config.spool) {
                    tracing::error!(target: "gatehouse::audit", error = %e, "the written audit spool cannot be removed; a replay will skip its records");
                }
                backlog = Backlog::default();
                self.checkpoint(&tenants).await;
            }
            Ok(()) => {}
        }
        self.backlog = Some(backlog);
    }
}

/// Writes the backlog's window, `chunk` records per transaction, and moves past what was
/// written, also when a write fails.
async fn write_window(
    store: &AuditStore,
    backlog: &mut Backlog,
    chunk: usize,
) -> Result<(), AuditError> {
    let result = write_in_chunks(store, &backlog.window, chunk).await;
    backlog.wrote(match &result {
        Ok(_) => backlog.window.len(),
        Err((done, _)) => *done,
    });
    result.map(|_| ()).map_err(|(_, e)| e)
}

/// Fills the backlog's empty window with up to `max` records of the spool file, from line
/// `backlog.written` on, and counts the file's lines. An unreadable line (a write torn by
/// a crash) is reported and passed over.
fn read_window(path: &Path, backlog: &mut Backlog, max: usize) -> Result<(), AuditError> {
    use std::io::BufRead as _;
    let spool_error = |e: std::io::Error| AuditError::Spool(e.to_string());
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *backlog = Backlog::default();
            return Ok(());
        }
        Err(e) => return Err(spool_error(e)),
    };
    let mut lines = 0;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(spool_error)?;
        if line.is_empty() {
            continue;
        }
        let number = lines;
        lines += 1;
        if number < backlog.written || backlog.window.len() >= max {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(record) => backlog.hold(number, record),
            Err(e) => {
                tracing::error!(target: "gatehouse::audit", error = %e, line, "an unreadable audit spool line is passed over");
                if backlog.window.is_empty() {
                    backlog.written = number + 1;
                }
            }
        }
    }
    backlog.lines = lines;
    Ok(())
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
                checkpoints.push(signer.sign(
                    tenant,
                    seq,
                    &hash,
                    gatehouse_core::time::now_unix_micros(),
                ));
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
    // Records name principals, resources and addresses: readable by the owner only.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(lines.as_bytes())?;
    file.sync_data()
}

/// Writes every record of the spool file at `path` to `store` (skipping those already
/// stored), a window at a time, and removes the file; returns how many records were read.
/// A missing file is an empty spool.
///
/// # Errors
/// [`AuditError`] when the store refuses; the spool then stays as it was.
pub async fn drain_spool(store: &AuditStore, path: &Path) -> Result<usize, AuditError> {
    let mut backlog = Backlog::default();
    let mut read = 0;
    loop {
        read_window(path, &mut backlog, DRAIN_WINDOW)?;
        read += backlog.window.len();
        write_window(store, &mut backlog, DRAIN_CHUNK).await?;
        if backlog.is_done() {
            remove_spool(path)?;
            return Ok(read);
        }
    }
}

/// Records per transaction when a spool is drained outside the worker.
const DRAIN_CHUNK: usize = 5_000;

/// Records held in memory when a spool is drained outside the worker.
const DRAIN_WINDOW: usize = 100_000;

/// Ends a last line left unfinished by a crash, so that the next record appended does not
/// run into it (and become unreadable with it).
fn end_torn_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
        file.sync_data()?;
    }
    Ok(())
}

fn remove_spool(path: &Path) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AuditError::Spool(e.to_string())),
        _ => Ok(()),
    }
}
