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

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
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

/// The spool file, shared by the spooler (which appends) and the database writer (which
/// reads back and removes it once everything in it is stored).
#[derive(Debug)]
pub(crate) struct SpoolFile {
    pub path: PathBuf,
    state: Mutex<SpoolState>,
}

#[derive(Debug)]
struct SpoolState {
    /// Counts removals: line numbers of an earlier generation mean nothing now.
    generation: u64,
    /// Complete lines in the file.
    lines: usize,
    file: Option<File>,
}

impl SpoolFile {
    /// Opens the spool at `path`, ending a line that a crash left unfinished, and counts
    /// the lines an earlier process left.
    fn open(path: &Path) -> std::io::Result<Self> {
        end_torn_line(path)?;
        let is_file = std::fs::metadata(path).is_ok_and(|m| m.is_file());
        let lines = if is_file {
            let bytes = std::fs::read(path)?;
            bytes
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .count()
        } else {
            0
        };
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(SpoolState {
                generation: 0,
                lines,
                file: None,
            }),
        })
    }

    /// Appends `records` and syncs; their generation and first line.
    fn append(&self, records: &[AuditRecord]) -> std::io::Result<(u64, usize)> {
        let mut text = String::new();
        for record in records {
            text.push_str(&record.canonical());
            text.push('\n');
        }
        let mut state = self.lock();
        if state.file.is_none() {
            // Records name principals, resources and addresses: the owner's only.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            state.file = Some(file);
        }
        let file = state.file.as_mut().expect("opened above");
        let before = file.metadata()?.len();
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Leave no half a line for the next record to run into.
            let _ = file.set_len(before);
            return Err(e);
        }
        let first_line = state.lines;
        state.lines += records.len();
        Ok((state.generation, first_line))
    }

    /// The generation and how many complete lines the file holds.
    pub fn snapshot(&self) -> (u64, usize) {
        let state = self.lock();
        (state.generation, state.lines)
    }

    /// Removes the file if it still holds exactly `lines` lines of `generation` (all of
    /// them stored); the new generation when it did.
    ///
    /// # Errors
    /// When the file cannot be removed.
    pub fn remove_if_all_of(&self, generation: u64, lines: usize) -> std::io::Result<Option<u64>> {
        let mut state = self.lock();
        if state.generation != generation || state.lines != lines {
            return Ok(None);
        }
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        state.file = None;
        state.lines = 0;
        state.generation += 1;
        Ok(Some(state.generation))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        // A panic while holding the lock leaves the counts as they were: still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
    /// The spool file's path.
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
    /// what the database writer takes (at most `memory_max` records in memory).
    ///
    /// # Errors
    /// When the spool cannot be opened or the thread cannot be started.
    pub fn start(
        path: &Path,
        durability: Durability,
        memory_max: usize,
    ) -> std::io::Result<(AuditWriter, Self, Spooled)> {
        let file = Arc::new(SpoolFile::open(path)?);
        let (sender, entries) = mpsc::channel();
        let (handoff, appended) = tokio_mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let memory_max = memory_max.max(1);
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
            durability,
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
            let mut stop = false;
            let mut next = Some(first);
            while let Some(entry) = next {
                match entry {
                    Entry::Record(record) => batch.push(*record),
                    Entry::Barrier(answer) => barriers.push(answer),
                    Entry::Stop => {
                        stop = true;
                        break;
                    }
                }
                next = if batch.len() < MAX_BATCH {
                    entries.try_recv().ok()
                } else {
                    None
                };
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
