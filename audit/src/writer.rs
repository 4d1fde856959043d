//! Writing spooled records to PostgreSQL from a background task.
//!
//! The spooler ([`crate::Spooler`]) makes records durable in the spool file and hands
//! them over. Every `flush_every`, the worker takes what was handed over and writes what
//! the spool holds to PostgreSQL, in transactions of `batch_max` records, each bounded by
//! `write_timeout`, and removes the file once everything in it is stored. While PostgreSQL
//! is unreachable, stalled or slower than the records arrive, the spool grows, and the
//! worker writes it in order and exactly once (stored ids are skipped) as soon as it can.
//! It holds at most `memory_max` unwritten records in memory, so a short backlog is never
//! read back from the file, and a long one (an outage of hours) costs disk, not memory:
//! it is read back from the file a window at a time. A spool left by an earlier process
//! is read the same way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_core::TenantId;

use tokio::sync::watch;

use crate::checkpoint::CheckpointSigner;
use crate::database::{AuditError, AuditStore};
use crate::record::AuditRecord;
use crate::spooler::{Appended, Spooled};

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records per transaction, at most.
    pub batch_max: usize,
    /// How often spooled records are written.
    pub flush_every: Duration,
    /// The longest one transaction may take before it is abandoned (and retried later).
    pub write_timeout: Duration,
    /// Signs the chains' heads after writes, at most once per `checkpoint_every` per tenant.
    pub checkpoints: Option<Arc<CheckpointSigner>>,
    /// How often a tenant's head is checkpointed (while it has new records).
    pub checkpoint_every: Duration,
}

/// Writes what the spooler spooled to the store; see [`AuditWorker::run`].
pub struct AuditWorker {
    spooled: Spooled,
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
    /// The spool file's generation these line numbers count in.
    generation: u64,
    /// Complete lines in the file, as far as the writer knows.
    lines: usize,
    /// Leading lines already in the store (or unreadable).
    written: usize,
    /// Records of the lines from `written` on: all of them, or the first `memory_max`.
    window: Vec<AuditRecord>,
    /// The line of each record of the window.
    window_lines: Vec<usize>,
}

impl Backlog {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    /// The line the window would hold next.
    fn window_end(&self) -> usize {
        self.window_lines
            .last()
            .map_or(self.written, |line| line + 1)
    }

    fn hold(&mut self, line: usize, record: AuditRecord) {
        self.window.push(record);
        self.window_lines.push(line);
    }

    /// Holds what fits in memory of records the spooler just appended, where they
    /// continue the window; the others are read back from the file later.
    fn appended(&mut self, appended: Appended, memory_max: usize) {
        if appended.generation != self.generation {
            return;
        }
        for (i, record) in appended.records.into_iter().enumerate() {
            let line = appended.first_line + i;
            if line == self.window_end() && self.window.len() < memory_max {
                self.hold(line, record);
            }
        }
        self.lines = self.lines.max(self.window_end());
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
    /// A worker writing what the spooler hands over (and the spool file holds) to
    /// `store`.
    pub fn new(spooled: Spooled, store: AuditStore, config: WriterConfig) -> Self {
        Self {
            spooled,
            store,
            config,
            checkpointed: Mutex::new(HashMap::new()),
            backlog: None,
        }
    }

    /// Writes spooled records every `flush_every` until `shutdown` turns true, then once
    /// more.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        let memory_max = self.spooled.memory_max;
        let mut backlog = match self.backlog.take() {
            Some(backlog) => backlog,
            // The spool file holds what an earlier process left, then what came since.
            None => Backlog::new(self.spooled.file.snapshot().0),
        };
        let mut tenants = Vec::new();
        while let Ok(appended) = self.spooled.appended.try_recv() {
            let count = appended.records.len();
            self.spooled.in_flight.fetch_sub(count, Ordering::AcqRel);
            add_tenants(&mut tenants, &appended.records);
            backlog.appended(appended, memory_max);
        }
        let (generation, lines) = self.spooled.file.snapshot();
        if generation == backlog.generation {
            backlog.lines = backlog.lines.max(lines);
        }
        let complete = Some(backlog.lines);
        if backlog.window.is_empty()
            && !backlog.is_done()
            && let Err(e) = read_window(self.spooled.path(), &mut backlog, memory_max, complete)
        {
            tracing::error!(target: "gatehouse::audit", error = %e, "the audit spool cannot be read; it is kept");
            self.backlog = Some(backlog);
            return;
        }
        add_tenants(&mut tenants, &backlog.window);
        let written = write_window(
            &self.store,
            &mut backlog,
            self.config.batch_max,
            self.config.write_timeout,
        )
        .await;
        match written {
            Err(e) => {
                let pending = backlog.lines.saturating_sub(backlog.written);
                tracing::warn!(target: "gatehouse::audit", error = %e, pending, "audit store unavailable; records kept in the spool");
            }
            // A spool that held records, all of them stored now (an empty one is left alone).
            Ok(()) if backlog.is_done() && backlog.lines > 0 => {
                let file = &self.spooled.file;
                match file.remove_if_all_of(backlog.generation, backlog.written) {
                    Ok(Some(generation)) => backlog = Backlog::new(generation),
                    // More was appended meanwhile: written at the next flush.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(target: "gatehouse::audit", error = %e, "the written audit spool cannot be removed; a replay will skip its records");
                    }
                }
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
    timeout: Duration,
) -> Result<(), AuditError> {
    let result = write_in_chunks(store, &backlog.window, chunk, timeout).await;
    backlog.wrote(match &result {
        Ok(_) => backlog.window.len(),
        Err((done, _)) => *done,
    });
    result.map(|_| ()).map_err(|(_, e)| e)
}

/// Fills the backlog's empty window with up to `max` records of the spool file, from line
/// `backlog.written` on, and counts the file's lines: all of them, or (while the spooler
/// appends) at most the `backlog.lines` it had completed. An unreadable line (a write
/// torn by a crash) is reported and passed over.
fn read_window(
    path: &Path,
    backlog: &mut Backlog,
    max: usize,
    limit: Option<usize>,
) -> Result<(), AuditError> {
    use std::io::BufRead as _;
    let spool_error = |e: std::io::Error| AuditError::Spool(e.to_string());
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Removed behind the writer's back: there is nothing left to read.
            backlog.window.clear();
            backlog.window_lines.clear();
            backlog.written = backlog.lines;
            return Ok(());
        }
        Err(e) => return Err(spool_error(e)),
    };
    let mut lines = 0;
    for line in std::io::BufReader::new(file).lines() {
        if limit.is_some_and(|limit| lines >= limit) {
            break;
        }
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

/// Adds the tenants of `records` to `tenants`, each once.
fn add_tenants(tenants: &mut Vec<TenantId>, records: &[AuditRecord]) {
    for record in records {
        if !tenants.contains(&record.tenant) {
            tenants.push(record.tenant.clone());
        }
    }
}

/// Writes `records` in order, `chunk` per transaction; how many were new to the store. On
/// a failure: how many records were done with before it.
async fn write_in_chunks(
    store: &AuditStore,
    records: &[AuditRecord],
    chunk: usize,
    timeout: Duration,
) -> Result<usize, (usize, AuditError)> {
    let (mut done, mut new) = (0, 0);
    for part in records.chunks(chunk.max(1)) {
        // A transaction abandoned here may still commit: its records are then skipped as
        // stored when they are written again.
        let appended = tokio::time::timeout(timeout, store.append(part))
            .await
            .unwrap_or(Err(AuditError::Timeout(timeout)));
        new += appended.map_err(|e| (done, e))?;
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

/// Writes every record of the spool file at `path` to `store` (skipping those already
/// stored), a window at a time, and removes the file; returns how many records were read.
/// A missing file is an empty spool.
///
/// # Errors
/// [`AuditError`] when the store refuses; the spool then stays as it was.
pub async fn drain_spool(store: &AuditStore, path: &Path) -> Result<usize, AuditError> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // Missing, or not a file one could read to the end (a device).
        return Ok(0);
    }
    let mut backlog = Backlog::default();
    let mut read = 0;
    loop {
        read_window(path, &mut backlog, DRAIN_WINDOW, None)?;
        read += backlog.window.len();
        write_window(store, &mut backlog, DRAIN_CHUNK, DRAIN_TIMEOUT).await?;
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

/// The longest one transaction may take when a spool is drained outside the worker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

fn remove_spool(path: &Path) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AuditError::Spool(e.to_string())),
        _ => Ok(()),
    }
}
