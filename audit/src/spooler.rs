//! Making records durable: one thread appends them to the spool file and syncs it.
//!
//! Requests hand their records to an [`AuditWriter`]. The spooler thread takes everything
//! queued since its last sync, appends it to the spool file in one write, and syncs the
//! file once for all of it (group commit): under load, many requests share one `fsync`.
//! A [`Receipt`] tells a request when the records it made are durable, so that nothing is
//! answered or changed before its record is on disk ([`Durability::Sync`]).
//!
//! The spooler never waits on PostgreSQL: it hands what it spooled to the database writer
//! ([`crate::AuditWorker`]) without blocking, at most `memory_max` records at a time. What
//! does not fit stays in the file only, and the writer reads it back from there. While the
//! database is slow or away, memory stays bounded and the spool grows on disk.
//!
//! The spool is a series of segments: the active file (`audit.spool`), which the spooler
//! appends to, and sealed ones (`audit.spool.<n>`). Once the active file holds
//! [`SEGMENT_BYTES`], the spooler seals it (a rename) and starts a new one, so that under
//! a load that never pauses the writer can still remove what it has stored: a sealed
//! segment once all of it is in the database, the active one when it has caught up.
//!
//! The active segment is zeroed ahead of the records, a growing stretch at a time
//! ([`zeroed_ahead`]), and records overwrite those zeros: a sync then writes data blocks
//! only. Appending to the file's end instead changes its size with every write, and each
//! sync must commit the file system's journal too: on ext4 here, 30% more CPU per sync
//! and a p99 ten times the median. The records end at the first NUL byte (JSON text has
//! none), and a segment is cut to its records when sealed or reopened.

use std::fs::File;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use tokio::sync::{mpsc as tokio_mpsc, oneshot};

use crate::record::AuditRecord;

/// When a request's audit record must be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// No answer and no effect without a durable record: requests wait for the spool's
    /// sync ([`Receipt::wait`]).
    #[default]
    Sync,
    /// Records are spooled soon after the answer: a crash can lose the last few.
    Async,
}

/// The most records one write and sync of the spool takes.
const MAX_BATCH: usize = 4_096;

/// The size past which the active segment is sealed and a new one started, by default.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// How the spooler works.
#[derive(Debug, Clone, Copy)]
pub struct SpoolOptions {
    /// When records must be durable.
    pub durability: Durability,
    /// The most records held in memory on the way to the database.
    pub memory_max: usize,
    /// The size past which the active segment is sealed.
    pub segment_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            memory_max: 100_000,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// The handle requests audit through. Cheap to clone; sending never blocks.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    sender: mpsc::Sender<Entry>,
    durability: Durability,
}

/// What the spooler thread receives, in order.
enum Entry {
    Record(Box<AuditRecord>),
    /// Answered once every record received before it is durable.
    Barrier(oneshot::Sender<bool>),
    /// Spool what came before, then end.
    Stop,
}

/// Says whether records are durable; see [`AuditWriter::barrier`].
#[must_use = "a receipt is the only way to know that the records are durable"]
#[derive(Debug)]
pub struct Receipt(Option<oneshot::Receiver<bool>>);

/// The records could not be made durable: answer 503, do not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit records could not be made durable")]
pub struct NotDurable;

impl Receipt {
    /// A receipt with nothing to wait for.
    pub fn ready() -> Self {
        Self(None)
    }

    /// Waits until the records are durable.
    ///
    /// # Errors
    /// [`NotDurable`] when the spool could not be written or the spooler is gone.
    pub async fn wait(self) -> Result<(), NotDurable> {
        match self.0 {
            None => Ok(()),
            Some(answer) => match answer.await {
                Ok(true) => Ok(()),
                _ => Err(NotDurable),
            },
        }
    }
}

impl AuditWriter {
    /// A writer whose records go nowhere, for checking a configuration without serving:
    /// under [`Durability::Sync`] every receipt fails.
    pub fn detached(durability: Durability) -> Self {
        let (sender, _) = mpsc::channel();
        Self { sender, durability }
    }

    /// How durable records are before requests go on.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Queues a record for the spool. False only when the spooler is gone.
    pub fn record(&self, record: AuditRecord) -> bool {
        self.sender.send(Entry::Record(Box::new(record))).is_ok()
    }

    /// A receipt for every record queued so far (by anyone): under [`Durability::Sync`],
    /// it is answered when they are all in the synced spool; under
    /// [`Durability::Async`] it is ready at once.
    pub fn barrier(&self) -> Receipt {
        if self.durability == Durability::Async {
            return Receipt::ready();
        }
        let (answer, receipt) = oneshot::channel();
        // If the spooler is gone, the answer is dropped and the receipt fails.
        let _ = self.sender.send(Entry::Barrier(answer));
        Receipt(Some(receipt))
    }
}

/// A run of records just appended to the spool, handed to the database writer.
#[derive(Debug)]
pub(crate) struct Appended {
    /// The spool file's generation (it starts over each time it is emptied).
    pub generation: u64,
    /// The line of the first record.
    pub first_line: usize,
    pub records: Vec<AuditRecord>,
}

/// The spool's segments, shared by the spooler (which appends to the active one and seals
/// it) and the database writer (which reads back and removes them once all they hold is
/// stored).
#[derive(Debug)]
pub(crate) struct SpoolFile {
    pub path: PathBuf,
    segment_bytes: u64,
    state: Mutex<SpoolState>,
}

#[derive(Debug)]
struct SpoolState {
    /// The active segment's generation (line numbers count within a generation).
    generation: u64,
    /// Complete lines in the active segment.
    lines: usize,
    /// The size of its records.
    bytes: u64,
    /// Its size on disk: the records, then zeros.
    zeroed: u64,
    file: Option<File>,
    /// Sealed segments not yet removed, oldest first.
    sealed: Vec<Segment>,
}

/// A segment of the spool, as the writer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub generation: u64,
    /// Complete lines in it.
    pub lines: usize,
    /// `None` for the active segment (the spool's own path).
    pub sealed: Option<PathBuf>,
}

impl SpoolFile {
    /// Opens the spool at `path`: the segments an earlier process sealed (in order), then
    /// its active file, whose line a crash left unfinished is ended.
    fn open(path: &Path, segment_bytes: u64) -> std::io::Result<Self> {
        let active = cut_to_records(path)?;
        let (lines, bytes) = (count_lines(&active), active.len() as u64);
        let sealed = sealed_segments(path)?;
        let generation = sealed.last().map_or(0, |s| s.generation + 1);
        Ok(Self {
            path: path.to_path_buf(),
            segment_bytes,
            state: Mutex::new(SpoolState {
                generation,
                lines,
                bytes,
                zeroed: bytes,
                file: None,
                sealed,
            }),
        })
    }

    /// Appends `records` and syncs; their generation and first line. Seals the active
    /// segment first when it is full.
    fn append(&self, records: &[AuditRecord]) -> std::io::Result<(u64, usize)> {
        let mut text = String::new();
        for record in records {
            text.push_str(&record.canonical());
            text.push('\n');
        }
        let mut state = self.lock();
        if state.bytes >= self.segment_bytes && state.lines > 0 {
            self.seal(&mut state)?;
        }
        if state.file.is_none() {
            // Records name principals, resources and addresses: the owner's only.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)?;
            state.zeroed = file.metadata()?.len();
            state.file = Some(file);
        }
        // The size is tracked, not asked for: no `fstat` per write.
        let before = state.bytes;
        let end = before + text.len() as u64;
        let zero_to = zeroed_ahead(before, end, state.zeroed, self.segment_bytes);
        let zeroed = state.zeroed;
        let file = state.file.as_mut().expect("opened above");
        let written = write_zeros(file, zeroed, zero_to)
            .and_then(|()| file.write_all_at(text.as_bytes(), before))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Leave no half a line for the next record to run into.
            let _ = file.set_len(before);
            state.zeroed = before;
            return Err(e);
        }
        state.zeroed = zero_to;
        let first_line = state.lines;
        state.lines += records.len();
        state.bytes = end;
        Ok((state.generation, first_line))
    }

    /// Renames the active segment to its sealed name and starts a new generation.
    fn seal(&self, state: &mut SpoolState) -> std::io::Result<()> {
        let sealed = sealed_path(&self.path, state.generation);
        if let Some(file) = &state.file {
            // A sealed segment holds its records only.
            file.set_len(state.bytes)?;
        }
        std::fs::rename(&self.path, &sealed)?;
        if let Some(dir) = self.path.parent() {
            // The rename must survive a crash as the records in it do.
            std::fs::File::open(dir)?.sync_all()?;
        }
        state.sealed.push(Segment {
            generation: state.generation,
            lines: state.lines,
            sealed: Some(sealed),
        });
        state.file = None;
        state.generation += 1;
        state.lines = 0;
        state.bytes = 0;
        state.zeroed = 0;
        Ok(())
    }

    /// The file of the segment of `generation` (`sealed` if the writer knows it sealed),
    /// to read back; `None` when it is gone. The active segment may be sealed (renamed)
    /// at any moment: the file opened is checked, under the lock, to still be that
    /// generation's, so that no line of the next generation is ever read as its.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open_segment(
        &self,
        generation: u64,
        sealed: Option<&Path>,
    ) -> std::io::Result<Option<File>> {
        let open = |path: &Path| match File::open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        if let Some(path) = sealed {
            return open(path);
        }
        let file = open(&self.path)?;
        let state = self.lock();
        if state.generation == generation {
            return Ok(file);
        }
        // Sealed since the writer last looked.
        let sealed = state.sealed.iter().find(|s| s.generation == generation);
        match sealed.and_then(|s| s.sealed.as_deref()) {
            Some(path) => open(path),
            None => Ok(None),
        }
    }

    /// Every segment, oldest first: the sealed ones, then the active one.
    pub fn segments(&self) -> Vec<Segment> {
        let state = self.lock();
        let mut segments = state.sealed.clone();
        segments.push(Segment {
            generation: state.generation,
            lines: state.lines,
            sealed: None,
        });
        segments
    }

    /// Removes a segment whose every line is stored: a sealed one at once; the active one
    /// only if it still holds exactly `lines` lines of `generation` (nothing was appended
    /// meanwhile), starting a new generation. Whether it was removed.
    ///
    /// # Errors
    /// When the file cannot be removed.
    pub fn remove(&self, segment: &Segment, lines: usize) -> std::io::Result<bool> {
        let mut state = self.lock();
        let path = match &segment.sealed {
            Some(path) => path.clone(),
            None if state.generation == segment.generation && state.lines == lines => {
                self.path.clone()
            }
            None => return Ok(false),
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if segment.sealed.is_some() {
            state.sealed.retain(|s| s.generation != segment.generation);
        } else {
            state.file = None;
            state.lines = 0;
            state.bytes = 0;
            state.zeroed = 0;
            state.generation += 1;
        }
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        // A panic while holding the lock leaves the counts as they were: still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where the segment of `generation` goes once sealed: `<spool>.<generation>`.
fn sealed_path(spool: &Path, generation: u64) -> PathBuf {
    let mut name = spool.as_os_str().to_owned();
    name.push(format!(".{generation}"));
    name.into()
}

/// The sealed segments beside `spool`, oldest first, with their line counts.
pub(crate) fn sealed_segments(spool: &Path) -> std::io::Result<Vec<Segment>> {
    let (Some(dir), Some(name)) = (spool.parent(), spool.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(generation) = file_name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let lines = count_lines(&std::fs::read(entry.path())?);
        segments.push(Segment {
            generation,
            lines,
            sealed: Some(entry.path()),
        });
    }
    segments.sort_by_key(|s| s.generation);
    Ok(segments)
}

/// Complete, non-empty lines, up to the zeros ahead of the records.
fn count_lines(bytes: &[u8]) -> usize {
    records(bytes)
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .count()
}

/// What the database writer takes from the spooler.
#[derive(Debug)]
pub struct Spooled {
    pub(crate) file: Arc<SpoolFile>,
    pub(crate) appended: tokio_mpsc::UnboundedReceiver<Appended>,
    /// Records handed over and not yet received.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// The most records held in memory on the way to the database.
    pub(crate) memory_max: usize,
}

impl Spooled {
    /// The spool's (active segment's) path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

/// The spooler thread; [`Spooler::stop`] spools what is queued and ends it.
#[derive(Debug)]
pub struct Spooler {
    sender: mpsc::Sender<Entry>,
    thread: Option<JoinHandle<()>>,
}

impl Spooler {
    /// Starts spooling to `path`: the handle requests audit through, the spooler, and
    /// what the database writer takes.
    ///
    /// # Errors
    /// When the spool cannot be opened or the thread cannot be started.
    pub fn start(
        path: &Path,
        options: SpoolOptions,
    ) -> std::io::Result<(AuditWriter, Self, Spooled)> {
        let file = Arc::new(SpoolFile::open(path, options.segment_bytes)?);
        let (sender, entries) = mpsc::channel();
        let (handoff, appended) = tokio_mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let memory_max = options.memory_max.max(1);
        let worker = SpoolerThread {
            file: file.clone(),
            handoff,
            in_flight: in_flight.clone(),
            memory_max,
            unspooled: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("audit spooler".into())
            .spawn(move || worker.run(&entries))?;
        let writer = AuditWriter {
            sender: sender.clone(),
            durability: options.durability,
        };
        let spooled = Spooled {
            file,
            appended,
            in_flight,
            memory_max,
        };
        let spooler = Self {
            sender,
            thread: Some(thread),
        };
        Ok((writer, spooler, spooled))
    }

    /// Spools everything queued before this call and ends the thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let _ = self.sender.send(Entry::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Spooler {
    fn drop(&mut self) {
        self.finish();
    }
}

struct SpoolerThread {
    file: Arc<SpoolFile>,
    handoff: tokio_mpsc::UnboundedSender<Appended>,
    in_flight: Arc<AtomicUsize>,
    memory_max: usize,
    /// Records whose spooling failed, written first next time.
    unspooled: Vec<AuditRecord>,
}

impl SpoolerThread {
    fn run(mut self, entries: &mpsc::Receiver<Entry>) {
        while let Ok(first) = entries.recv() {
            let mut batch = std::mem::take(&mut self.unspooled);
            let mut barriers = Vec::new();
            let mut stop = !take(first, &mut batch, &mut barriers);
            while !stop && batch.len() < MAX_BATCH {
                let Ok(entry) = entries.try_recv() else { break };
                stop = !take(entry, &mut batch, &mut barriers);
            }
            self.spool(batch);
            // Every record before a barrier is durable only if nothing is left unspooled.
            let durable = self.unspooled.is_empty();
            for answer in barriers {
                let _ = answer.send(durable);
            }
            if stop {
                break;
            }
        }
        if !self.unspooled.is_empty() {
            let records: Vec<String> = self.unspooled.iter().map(AuditRecord::canonical).collect();
            tracing::error!(target: "gatehouse::audit", records = ?records, "AUDIT RECORDS COULD NOT BE SPOOLED");
        }
    }

    /// Appends `batch` and hands it to the database writer; keeps it to retry when the
    /// spool cannot be written.
    fn spool(&mut self, batch: Vec<AuditRecord>) {
        if batch.is_empty() {
            return;
        }
        match self.file.append(&batch) {
            Ok((generation, first_line)) => self.hand_over(generation, first_line, batch),
            Err(e) => {
                tracing::error!(target: "gatehouse::audit", error = %e, records = batch.len(), "the audit spool cannot be written: requests are refused until it can");
                self.unspooled = batch;
                if self.unspooled.len() > MAX_BATCH * 16 {
                    // Only under Durability::Async, whose requests do not wait: say loudly
                    // what is lost, with the records themselves.
                    let lost: Vec<AuditRecord> = self.unspooled.drain(..MAX_BATCH).collect();
                    let records: Vec<String> = lost.iter().map(AuditRecord::canonical).collect();
                    tracing::error!(target: "gatehouse::audit", records = ?records, "AUDIT RECORDS COULD NOT BE SPOOLED");
                }
            }
        }
    }

    /// Gives the writer the records while it holds fewer than `memory_max`; otherwise it
    /// reads them back from the file.
    fn hand_over(&self, generation: u64, first_line: usize, records: Vec<AuditRecord>) {
        let count = records.len();
        if self.in_flight.fetch_add(count, Ordering::AcqRel) + count > self.memory_max {
            self.in_flight.fetch_sub(count, Ordering::AcqRel);
            return;
        }
        let appended = Appended {
            generation,
            first_line,
            records,
        };
        if self.handoff.send(appended).is_err() {
            self.in_flight.fetch_sub(count, Ordering::AcqRel);
        }
    }
}

/// Adds `entry` to the batch or the barriers; false for [`Entry::Stop`].
fn take(
    entry: Entry,
    batch: &mut Vec<AuditRecord>,
    barriers: &mut Vec<oneshot::Sender<bool>>,
) -> bool {
    match entry {
        Entry::Record(record) => batch.push(*record),
        Entry::Barrier(answer) => barriers.push(answer),
        Entry::Stop => return false,
    }
    true
}

/// How far the active segment must be zeroed before records are written from `start` to
/// `end`, when it is zeroed up to `zeroed`: unchanged while they fit; otherwise past them
/// by as much as the segment holds (at least 64 KiB, at most 1 MiB, so that a spool that
/// is often emptied zeroes little and a busy one seldom), never far past a full segment.
fn zeroed_ahead(start: u64, end: u64, zeroed: u64, segment_bytes: u64) -> u64 {
    const MIN_AHEAD: u64 = 64 * 1024;
    const MAX_AHEAD: u64 = 1024 * 1024;
    if end <= zeroed {
        return zeroed;
    }
    let ahead = start.clamp(MIN_AHEAD, MAX_AHEAD);
    (end + ahead).min(end.max(segment_bytes))
}

/// Writes zeros over `from..to` of `file` (nothing if `to <= from`).
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The records of a segment's bytes: up to the first NUL, where its zeros begin.
fn records(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Cuts the active segment an earlier process left to its records (the zeros ahead of
/// them, and whatever a crash left among those, go) and ends a last line left unfinished
/// by a crash, so that the next record written does not run into it (and become
/// unreadable with it). Returns what the segment then holds.
fn cut_to_records(path: &Path) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // Missing, or a device: nothing to cut.
        return Ok(Vec::new());
    }
    let mut content = std::fs::read(path)?;
    let length = records(&content).len();
    if length == content.len() && content.last().is_none_or(|b| *b == b'\n') {
        return Ok(content);
    }
    content.truncate(length);
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(length as u64)?;
    if content.last().is_some_and(|b| *b != b'\n') {
        file.write_all_at(b"\n", length as u64)?;
        content.push(b'\n');
    }
    file.sync_data()?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    #[test]
    fn a_segment_sealed_behind_the_writers_back_is_still_read_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolFile::open(&dir.path().join("audit.spool"), 1).unwrap();
        let first = record("first");
        assert_eq!(spool.append(std::slice::from_ref(&first)).unwrap(), (0, 0));
        // The writer last saw generation 0 active; the next append seals it.
        let second = record("second");
        assert_eq!(spool.append(std::slice::from_ref(&second)).unwrap(), (1, 0));
        let read = |generation| {
            let mut text = String::new();
            let file = spool.open_segment(generation, None).unwrap();
            std::io::Read::read_to_string(&mut file.unwrap(), &mut text).unwrap();
            text
        };
        assert_eq!(
            read(0),
            first.canonical() + "\n",
            "generation 0, now sealed"
        );
        assert_eq!(read(1), second.canonical() + "\n");
        let segments = spool.segments();
        assert_eq!(segments.len(), 2);
        assert_eq!((segments[0].generation, segments[0].lines), (0, 1));
        assert!(
            segments[0]
                .sealed
                .as_ref()
                .unwrap()
                .ends_with("audit.spool.0")
        );
    }

    #[test]
    fn records_overwrite_zeros_ahead_and_a_segment_is_cut_to_its_records_when_sealed_or_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.spool");
        let spool = SpoolFile::open(&path, 1024 * 1024).unwrap();
        let first = record("first");
        spool.append(std::slice::from_ref(&first)).unwrap();
        let line = first.canonical() + "\n";
        let content = std::fs::read(&path).unwrap();
        assert!(
            content.len() >= 64 * 1024,
            "zeroed ahead: {}",
            content.len()
        );
        assert_eq!(&content[..line.len()], line.as_bytes());
        assert!(content[line.len()..].iter().all(|b| *b == 0));
        assert_eq!(count_lines(&content), 1);

        // A crash in the middle of a write: half a line, then zeros, then what a torn
        // page left behind them.
        let second = record("second");
        let mut torn = content.clone();
        torn[line.len()..line.len() + 10].copy_from_slice(&second.canonical().as_bytes()[..10]);
        torn[line.len() + 100..line.len() + 104].copy_from_slice(b"junk");
        drop(spool);
        std::fs::write(&path, &torn).unwrap();
        let spool = SpoolFile::open(&path, 1024 * 1024).unwrap();
        let cut = std::fs::read(&path).unwrap();
        let expected = format!("{line}{}\n", &second.canonical()[..10]);
        assert_eq!(
            String::from_utf8(cut).unwrap(),
            expected,
            "records, the torn line ended"
        );
        assert_eq!(spool.segments()[0].lines, 2);

        // Appending goes on after them, over fresh zeros.
        let third = record("third");
        assert_eq!(spool.append(std::slice::from_ref(&third)).unwrap(), (0, 2));
        let content = std::fs::read(&path).unwrap();
        assert_eq!(
            records(&content),
            format!("{expected}{}\n", third.canonical()).as_bytes()
        );

        // Sealed, a segment holds its records only.
        let spool = SpoolFile {
            segment_bytes: 1,
            ..spool
        };
        spool.append(std::slice::from_ref(&first)).unwrap();
        let sealed = std::fs::read(dir.path().join("audit.spool.0")).unwrap();
        assert_eq!(sealed, records(&content));
    }

    #[test]
    fn zeroing_ahead_grows_with_the_segment_within_bounds() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(zeroed_ahead(0, 500, 4096, 16 * MIB), 4096, "fits");
        assert_eq!(zeroed_ahead(0, 500, 0, 16 * MIB), 500 + 64 * 1024);
        assert_eq!(zeroed_ahead(3 * MIB, 3 * MIB + 9, 0, 16 * MIB), 4 * MIB + 9);
        assert_eq!(zeroed_ahead(MIB / 2, MIB / 2 + 1, 0, 16 * MIB), MIB + 1);
        assert_eq!(
            zeroed_ahead(16 * MIB - 10, 16 * MIB + 5, 0, 16 * MIB),
            16 * MIB + 5,
            "not past a full segment"
        );
        assert_eq!(zeroed_ahead(0, 10, 0, 1), 10);
    }
}
