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

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_core::TenantId;

use tokio::sync::watch;

use crate::checkpoint::CheckpointSigner;
use crate::database::{AuditError, AuditStore};
use crate::record::AuditRecord;
use crate::spooler::{Appended, Segment, Spooled, sealed_segments};

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
    /// Where each segment of the spool stands, oldest first (the active one last).
    backlogs: VecDeque<Backlog>,
}

/// A spool segment's lines are records in order: first those already in the store, then
/// the unwritten ones, whose first few are also held in memory (the window).
#[derive(Debug, Default)]
struct Backlog {
    /// The segment's generation, in which these line numbers count.
    generation: u64,
    /// Its file once sealed; `None` while it is the active one.
    sealed: Option<std::path::PathBuf>,
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

    /// The segment as the spool knows it.
    fn segment(&self) -> Segment {
        Segment {
            generation: self.generation,
            lines: self.lines,
            sealed: self.sealed.clone(),
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

    /// Holds at most `room` of the records the spooler just appended, where they
    /// continue the window; the others are read back from the file later.
    fn appended(&mut self, appended: Appended, mut room: usize) {
        for (i, record) in appended.records.into_iter().enumerate() {
            let line = appended.first_line + i;
            if line == self.window_end() && room > 0 {
                self.hold(line, record);
                room -= 1;
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
    /// A worker writing what the spooler hands over (and the spool's segments hold) to
    /// `store`.
    pub fn new(spooled: Spooled, store: AuditStore, config: WriterConfig) -> Self {
        Self {
            spooled,
            store,
            config,
            checkpointed: Mutex::new(HashMap::new()),
            backlogs: VecDeque::new(),
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

    /// Takes what was handed over, then writes the segments in order, oldest first,
    /// removing each once all of it is stored.
    async fn flush(&mut self) {
        let mut tenants = Vec::new();
        self.take_handed_over();
        while let Some(backlog) = self.backlogs.front_mut() {
            let written = write_segment(
                &self.store,
                &self.spooled,
                &self.config,
                backlog,
                &mut tenants,
            )
            .await;
            if let Err(e) = written {
                let pending = backlog.lines.saturating_sub(backlog.written);
                tracing::warn!(target: "gatehouse::audit", error = %e, pending, "audit store unavailable; records kept in the spool");
                break;
            }
            // A segment that held records, all of them stored now (an empty one is left
            // alone); the active one only if nothing was appended meanwhile.
            if !backlog.is_done() || backlog.lines == 0 {
                break;
            }
            match self
                .spooled
                .file
                .remove(&backlog.segment(), backlog.written)
            {
                Ok(true) if backlog.sealed.is_some() => {
                    self.backlogs.pop_front();
                }
                Ok(true) => {
                    let next = backlog.generation + 1;
                    *backlog = Backlog::new(next);
                    break;
                }
                // More was appended meanwhile: written at the next flush.
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(target: "gatehouse::audit", error = %e, "the written audit spool cannot be removed; a replay will skip its records");
                    break;
                }
            }
        }
        self.checkpoint(&tenants).await;
    }

    /// Brings the backlogs in line with the spool's segments and holds what the spooler
    /// handed over, within `memory_max` records in all.
    fn take_handed_over(&mut self) {
        let mut handed = Vec::new();
        while let Ok(appended) = self.spooled.appended.try_recv() {
            let count = appended.records.len();
            self.spooled.in_flight.fetch_sub(count, Ordering::AcqRel);
            handed.push(appended);
        }
        // The segments as they are after everything handed over was appended.
        for segment in self.spooled.file.segments() {
            let known = self
                .backlogs
                .iter_mut()
                .find(|b| b.generation == segment.generation);
            match known {
                Some(backlog) => {
                    backlog.sealed = segment.sealed;
                    backlog.lines = backlog.lines.max(segment.lines);
                }
                None => {
                    let mut backlog = Backlog::new(segment.generation);
                    backlog.sealed = segment.sealed;
                    backlog.lines = segment.lines;
                    self.backlogs.push_back(backlog);
                }
            }
        }
        for appended in handed {
            let held: usize = self.backlogs.iter().map(|b| b.window.len()).sum();
            let room = self.spooled.memory_max.saturating_sub(held);
            if let Some(backlog) = self
                .backlogs
                .iter_mut()
                .find(|b| b.generation == appended.generation)
            {
                backlog.appended(appended, room);
            }
        }
    }
}

/// Writes what `backlog`'s segment holds that is not stored yet, reading it back from the
/// file when it is not in memory; adds the tenants it writes for to `tenants`.
async fn write_segment(
    store: &AuditStore,
    spooled: &Spooled,
    config: &WriterConfig,
    backlog: &mut Backlog,
    tenants: &mut Vec<TenantId>,
) -> Result<(), AuditError> {
    let complete = Some(backlog.lines);
    if backlog.window.is_empty() && !backlog.is_done() {
        let file = spooled
            .file
            .open_segment(backlog.generation, backlog.sealed.as_deref())
            .map_err(|e| AuditError::Spool(e.to_string()))?;
        read_window(file, backlog, spooled.memory_max, complete)?;
    }
    add_tenants(tenants, &backlog.window);
    write_window(store, backlog, config.batch_max, config.write_timeout).await
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

/// Fills the backlog's empty window with up to `max` records of its spool file (`None`:
/// gone), from line
/// `backlog.written` on, and counts the file's lines: all of them, or (while the spooler
/// appends) at most the `backlog.lines` it had completed. An unreadable line (a write
/// torn by a crash) is reported and passed over.
fn read_window(
    file: Option<std::fs::File>,
    backlog: &mut Backlog,
    max: usize,
    limit: Option<usize>,
) -> Result<(), AuditError> {
    use std::io::BufRead as _;
    let spool_error = |e: std::io::Error| AuditError::Spool(e.to_string());
    let Some(file) = file else {
        // Removed behind the writer's back: there is nothing left to read.
        backlog.window.clear();
        backlog.window_lines.clear();
        backlog.written = backlog.lines;
        return Ok(());
    };
    let mut lines = 0;
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    while limit.is_none_or(|limit| lines < limit) {
        line.clear();
        if reader.read_line(&mut line).map_err(spool_error)? == 0 {
            break;
        }
        if line.starts_with('\0') {
            // The zeros ahead of the records: the segment's end.
            break;
        }
        let line = line.trim_end_matches('\n');
        if line.is_empty() {
            continue;
        }
        let number = lines;
        lines += 1;
        if number < backlog.written || backlog.window.len() >= max {
            continue;
        }
        match serde_json::from_str(line) {
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

/// Writes every record of the spool at `path` to `store` (skipping those already
/// stored): its sealed segments, oldest first, then the active file, a window at a time,
/// removing each once written; returns how many records were read. A missing file is an
/// empty spool.
///
/// # Errors
/// [`AuditError`] when the store refuses; what is not written stays as it was.
pub async fn drain_spool(store: &AuditStore, path: &Path) -> Result<usize, AuditError> {
    let sealed = sealed_segments(path).map_err(|e| AuditError::Spool(e.to_string()))?;
    let mut read = 0;
    for segment in sealed.iter().filter_map(|s| s.sealed.as_deref()) {
        read += drain_file(store, segment).await?;
    }
    Ok(read + drain_file(store, path).await?)
}

/// Writes every record of one spool file and removes it; how many were read.
async fn drain_file(store: &AuditStore, path: &Path) -> Result<usize, AuditError> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // Missing, or not a file one could read to the end (a device).
        return Ok(0);
    }
    let mut backlog = Backlog::default();
    let mut read = 0;
    loop {
        let file = std::fs::File::open(path).map_err(|e| AuditError::Spool(e.to_string()))?;
        read_window(Some(file), &mut backlog, DRAIN_WINDOW, None)?;
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
