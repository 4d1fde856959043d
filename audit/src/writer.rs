//! Writing records in batches from a background task, with a spool for outages.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use crate::record::AuditRecord;
use crate::store::AuditStore;

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// At most this many records per batch.
    pub batch_max: usize,
    /// A batch is written at least this often.
    pub flush_every: Duration,
    /// Where batches go while PostgreSQL is unreachable (JSON lines).
    pub spool: PathBuf,
}

/// The handle requests use: sending never blocks and never fails while the worker runs.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    sender: mpsc::UnboundedSender<AuditRecord>,
}

/// The receiving end of [`AuditWriter`]s, for an [`AuditWorker`].
#[derive(Debug)]
pub struct AuditQueue {
    receiver: mpsc::UnboundedReceiver<AuditRecord>,
}

impl AuditWriter {
    /// A writer and the queue its records arrive on. The queue can be handed to a worker
    /// later, e.g. once a database connection exists.
    pub fn channel() -> (Self, AuditQueue) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, AuditQueue { receiver })
    }

    /// Queues a record for writing.
    ///
    /// Returns false only when the worker has stopped (the record could not be queued).
    pub fn record(&self, record: AuditRecord) -> bool {
        self.sender.send(record).is_ok()
    }
}

/// Drains the queue into the store; see [`AuditWorker::run`].
pub struct AuditWorker {
    receiver: mpsc::UnboundedReceiver<AuditRecord>,
    store: AuditStore,
    config: WriterConfig,
}

impl AuditWorker {
    /// A worker writing what arrives on `queue` to `store`.
    pub fn new(queue: AuditQueue, store: AuditStore, config: WriterConfig) -> Self {
        Self {
            receiver: queue.receiver,
            store,
            config,
        }
    }

    /// Writes batches until `shutdown` turns true and every queued record is written or
    /// spooled. A batch that cannot be written is appended to the spool; the spool is
    /// replayed (in order, skipping records already stored) before any newer batch.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        let mut batch: Vec<AuditRecord> = Vec::new();
        loop {
            let stop = tokio::select! {
                received = self.receiver.recv() => match received {
                    Some(record) => {
                        batch.push(record);
                        if batch.len() < self.config.batch_max {
                            continue;
                        }
                        false
                    }
                    None => true,
                },
                _ = tick.tick() => false,
                changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
            };
            if stop {
                while let Ok(record) = self.receiver.try_recv() {
                    batch.push(record);
                }
            }
            self.flush(std::mem::take(&mut batch)).await;
            if stop {
                return;
            }
        }
    }

    /// Writes `batch` after any spooled records; spools what cannot be written.
    async fn flush(&self, batch: Vec<AuditRecord>) {
        let spooled = self.replay_spool().await;
        if batch.is_empty() {
            return;
        }
        if spooled {
            if let Err(e) = self.store.append(&batch).await {
                tracing::warn!(target: "gatehouse::audit", error = %e, records = batch.len(), "audit store unavailable; spooling");
                self.spool(&batch).await;
            }
        } else {
            self.spool(&batch).await;
        }
    }

    /// Replays the spool; true when it is empty afterwards.
    async fn replay_spool(&self) -> bool {
        let text = match tokio::fs::read_to_string(&self.config.spool).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) => {
                tracing::error!(target: "gatehouse::audit", error = %e, "cannot read the audit spool");
                return false;
            }
        };
        let records: Vec<AuditRecord> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.is_empty() {
            return tokio::fs::remove_file(&self.config.spool).await.is_ok();
        }
        match self.store.append(&records).await {
            Ok(written) => {
                tracing::info!(target: "gatehouse::audit", spooled = records.len(), written, "audit spool replayed");
                tokio::fs::remove_file(&self.config.spool).await.is_ok()
            }
            Err(_) => false,
        }
    }

    async fn spool(&self, batch: &[AuditRecord]) {
        let mut lines = String::new();
        for record in batch {
            lines.push_str(&record.canonical());
            lines.push('\n');
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.spool)
            .await;
        let written = match file {
            Ok(mut f) => match f.write_all(lines.as_bytes()).await {
                Ok(()) => f.sync_data().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Nowhere left to put them: say so loudly, with the records themselves.
            tracing::error!(target: "gatehouse::audit", error = %e, records = %lines, "AUDIT RECORDS COULD NOT BE SPOOLED");
        }
    }
}
