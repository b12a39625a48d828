//! A file committed in parts (spec v1.2 §2): the store as the checking stage's sink.
//! Valid rows go to the store writer chunk by chunk; once nothing can refuse the whole
//! file any more (a CSV's or JSONL's required columns are there), every [`PART_ROWS`]
//! rows a part is committed with the file's progress — each part its own job of the
//! writer, so the uplink sends it while the rest is still read, and the writer is free
//! between parts. A resume after a crash re-reads and re-checks the file from the top
//! (so its report and rejected rows come out the same) but sends only the rows after
//! the last committed part; the store's refusals of the rows before come from the
//! journal. A JSON array or a workbook, whose refusal can only be known at its end, is
//! committed in one part.

use super::*;
use crate::store::{PartEnd, Progress};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Mutex;

/// Valid rows per part: a few MiB of records, a commit (one fsync) every few
/// thousand rows.
pub(super) const PART_ROWS: u64 = 4096;

/// What one chunk sent will be answered with: the journal's refusals of its rows
/// committed before, and the store's answer for the rest if any were sent.
struct Expect {
    replayed: Vec<RowError>,
    from_store: bool,
}

pub(super) struct StoreSink {
    store: Store,
    meta: Arc<FileMeta>,
    tx: Option<SyncSender<IngestMsg>>,
    rx: Arc<Mutex<Receiver<IngestMsg>>>,
    answers_tx: SyncSender<Vec<RowError>>,
    answers: Receiver<Vec<RowError>>,
    /// Results of the part jobs queued, oldest first.
    jobs: VecDeque<std::sync::mpsc::Receiver<Result<PartEnd, crate::store::StoreError>>>,
    /// A part is open: a job was queued and neither `Commit` nor the report sent yet.
    open: bool,
    expected: VecDeque<Expect>,
    /// Rows up to this one were committed by an earlier run (a resume).
    done: u64,
    replay: VecDeque<RowError>,
    /// The format allows parts (CSV, JSONL) …
    format_parts: bool,
    /// … and the header left nothing that could refuse the whole file.
    decided: bool,
    in_part: u64,
    last_sent: u64,
    /// Parts committed by this run.
    committed: u64,
    /// Whether the file changed since it was opened (checked before each commit).
    changed: Box<dyn Fn() -> bool + Send>,
    /// The writer failed or went away.
    failed: bool,
}

impl StoreSink {
    pub(super) fn new(
        store: Store,
        meta: FileMeta,
        format: Format,
        progress: Option<Progress>,
        changed: Box<dyn Fn() -> bool + Send>,
    ) -> StoreSink {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let (answers_tx, answers) = std::sync::mpsc::sync_channel(8);
        let progress = progress.unwrap_or_default();
        StoreSink {
            store,
            meta: Arc::new(meta),
            tx: Some(tx),
            rx: Arc::new(Mutex::new(rx)),
            answers_tx,
            answers,
            jobs: VecDeque::new(),
            open: false,
            expected: VecDeque::new(),
            done: progress.rows_done,
            replay: progress.refused.into(),
            format_parts: matches!(format, Format::Csv | Format::Jsonl),
            decided: false,
            in_part: 0,
            last_sent: progress.rows_done,
            committed: 0,
            changed,
            failed: false,
        }
    }

    /// Whether parts of the file are in the store (committed by this run or before).
    pub(super) fn parts_stored(&self) -> bool {
        self.committed > 0 || self.done > 0
    }

    /// Queues the job of a new part on the writer.
    fn open_part(&mut self) {
        if self.open || self.failed {
            return;
        }
        let (rx, answers, meta) = (self.rx.clone(), self.answers_tx.clone(), self.meta.clone());
        let job = self.store.submit(move |w| {
            let rows = rx.lock().map_err(|_| crate::store::StoreError::corrupt("the ingest channel", "a part's job panicked"))?;
            w.ingest_part(&meta, &rows, &answers)
        });
        match job {
            Ok(j) => {
                self.jobs.push_back(j);
                self.open = true;
            }
            Err(_) => self.failed = true,
        }
    }

    fn post(&mut self, m: IngestMsg) {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(m).is_ok());
        if !sent {
            self.failed = true;
        }
    }

    /// Ends the open part: committed with the file's progress.
    fn commit(&mut self) {
        if (self.changed)() {
            // Nothing more of this file is stored: its bytes are no longer those read.
            self.tx = None;
            self.failed = true;
            return;
        }
        self.post(IngestMsg::Commit { through_row: self.last_sent });
        self.open = false;
        self.in_part = 0;
        self.committed += 1;
    }

    /// Whether a part job ended in failure (the writer's error, or its absence).
    /// Parts found committed are done with.
    fn writer_failed(&mut self) -> bool {
        if self.failed {
            return true;
        }
        while let Some(j) = self.jobs.front() {
            match j.try_recv() {
                Ok(Ok(PartEnd::Committed)) => {
                    self.jobs.pop_front();
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return false,
                _ => {
                    self.failed = true;
                    return true;
                }
            }
        }
        false
    }

    /// Sends the final report and waits for the file's journal entry; `Err` when the
    /// writer failed (what was committed in parts stays, and a retry resumes).
    pub(super) fn finish(mut self, report: Report) -> anyhow::Result<crate::store::IngestSummary> {
        self.open_part();
        self.post(IngestMsg::Done(Box::new(report)));
        self.tx = None;
        let mut summary = None;
        while let Some(j) = self.jobs.pop_front() {
            match j.recv() {
                Ok(Ok(PartEnd::Committed)) => {}
                Ok(Ok(PartEnd::Done(s))) => summary = Some(*s),
                Ok(Err(e)) => return Err(e).context("the store refused the file"),
                Err(_) => anyhow::bail!("the store writer stopped during the ingest"),
            }
        }
        summary.ok_or_else(|| anyhow::anyhow!("the store writer stopped during the ingest"))
    }

    /// Gives up on the file: the part in progress is rolled back, committed ones stay.
    pub(super) fn abandon(mut self) {
        self.tx = None;
        while let Some(j) = self.jobs.pop_front() {
            let _ = j.recv();
        }
    }
}

impl RowSink for StoreSink {
    fn whole_file_decided(&mut self) {
        self.decided = true;
    }

    fn send(&mut self, rows: Vec<(u64, Row)>) {
        let last = rows.last().map_or(0, |(n, _)| *n);
        // What an earlier run committed is not sent again; its refusals are replayed.
        let mut replayed = Vec::new();
        while self.replay.front().is_some_and(|e| e.row <= last.min(self.done)) {
            replayed.extend(self.replay.pop_front());
        }
        let fresh: Vec<Prepared> = rows.into_iter().filter(|(n, _)| *n > self.done).map(|(n, row)| Prepared::new(n, row)).collect();
        if fresh.is_empty() {
            self.expected.push_back(Expect { replayed, from_store: false });
            return;
        }
        self.open_part();
        self.in_part += fresh.len() as u64;
        self.last_sent = last;
        self.post(IngestMsg::Rows(fresh));
        self.expected.push_back(Expect { replayed, from_store: !self.failed });
        if self.format_parts && self.decided && self.in_part >= PART_ROWS && !self.failed {
            self.commit();
        }
    }

    fn answer(&mut self, wait: bool) -> Option<Vec<RowError>> {
        let front = self.expected.front_mut()?;
        if front.from_store {
            let got = loop {
                match self.answers.recv_timeout(if wait { Duration::from_millis(200) } else { Duration::ZERO }) {
                    Ok(a) => break Some(a),
                    Err(_) if !wait => return None,
                    Err(_) => {
                        if self.writer_failed() {
                            break None;
                        }
                    }
                }
            };
            let front = self.expected.front_mut()?;
            match got {
                Some(mut a) => front.replayed.append(&mut a),
                // The writer failed; its error arrives with the file's result.
                None => {
                    self.expected.clear();
                    return None;
                }
            }
        }
        self.expected.pop_front().map(|e| e.replayed)
    }
}
