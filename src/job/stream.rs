//! Streaming upload (issue 17 item 6): while `test` runs, each finished
//! run goes into a bounded queue that one uploader thread drains in chunks,
//! so the upload after the last run is about one chunk.
//!
//! The chunks are those of a finished directory's upload (same payload,
//! `run_batch.id` chaining, Idempotency-Keys and `upload_state.json`), so a
//! later `sync upload` resumes a streamed upload as it resumes any other.
//! The runs never wait on the platform: a full queue ends streaming (the
//! rest is read back from the trace at the end), and so does a chunk the
//! platform did not take after the client's bounded retries (the whole
//! directory is then uploaded at the end, which stores nothing twice).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::Client;
use crate::auth::login::Session;
use crate::ci::CiInfo;
use crate::config::project::limits::Shard;
use crate::error::{Error, Result};
use crate::results::{self, TraceRecord};
use crate::upload::{self, BatchInfo, Chunker, Dest, Uploaded};

/// Runs the queue holds: a few chunks, so a fast agent does not outrun an
/// uploader busy with one request, while memory stays bounded.
const QUEUE: usize = 4 * upload::CHUNK;
/// A chunk not full after this long goes anyway: a slow agent's runs show
/// up on the platform while the job still runs.
const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// The batch a streaming upload sends to, owned so its thread can hold it.
pub(crate) struct StreamFacts {
    pub(crate) bundle_version_id: String,
    pub(crate) started_at: String,
    pub(crate) ci: CiInfo,
    pub(crate) batch_key: Option<String>,
    pub(crate) shard: Option<Shard>,
}

impl StreamFacts {
    /// The batch as a chunk states it, `completed_at` as of that chunk.
    pub(crate) fn info<'a>(&'a self, completed_at: &'a str) -> BatchInfo<'a> {
        BatchInfo {
            bundle_version_id: &self.bundle_version_id,
            started_at: &self.started_at,
            completed_at,
            ci: &self.ci,
            batch_key: self.batch_key.as_deref(),
            shard: self.shard,
        }
    }
}

/// The producer's end: the run stage offers each finished run. Dropped
/// without [`Stream::close`] (the run was interrupted, or failed), its
/// uploader ends after the request in flight, or with the process: a
/// signal never waits on the platform.
pub(crate) struct Stream {
    queue: Option<SyncSender<TraceRecord>>,
    uploader: JoinHandle<Result<Chunker>>,
}

/// What streaming left for the end of the run.
pub(crate) enum Streamed {
    /// Streaming held up: the records it has not sent wait in the chunker
    /// or, after an overflow, in the trace only.
    Going(Box<Chunker>),
    /// A chunk failed; the directory is uploaded whole at the end, whose
    /// error (if the platform is still away) is the one to report.
    Stopped,
}

/// Starts the uploader thread of result directory `dir`.
pub(crate) fn start(session: Arc<Session>, dir: PathBuf, facts: StreamFacts) -> Stream {
    let (queue, runs) = mpsc::sync_channel(QUEUE);
    // A state file that cannot be written stops streaming like a failed
    // chunk: the upload at the end says why.
    let uploader = std::thread::spawn(move || {
        let to = Dest {
            client: &session.client,
            dir: &dir,
        };
        let chunker = Chunker::open(&dir, &facts.bundle_version_id)?;
        drain(runs, to, chunker, &facts)
    });
    Stream {
        queue: Some(queue),
        uploader,
    }
}

/// Sends chunks as runs arrive, a chunk that waited [`FLUSH_AFTER`] too,
/// until the queue closes. On an error the queue is dropped, which tells
/// the producer to stop offering.
fn drain(
    runs: Receiver<TraceRecord>,
    to: Dest<'_>,
    mut chunker: Chunker,
    facts: &StreamFacts,
) -> Result<Chunker> {
    let mut quiet = |_: usize, _: usize| {};
    let mut due: Option<Instant> = None;
    loop {
        let wait = due.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        let now = || results::rfc3339(time::OffsetDateTime::now_utc());
        match runs.recv_timeout(wait) {
            Ok(record) => {
                let before = chunker.pending();
                chunker.add(to, &record, &facts.info(&now()), &mut quiet)?;
                // A new chunk begun (or a full one sent): its clock starts.
                if chunker.pending() <= before || due.is_none() {
                    due = Some(Instant::now() + FLUSH_AFTER);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if chunker.pending() > 0 {
                    chunker.send(to, &facts.info(&now()), false, &mut quiet)?;
                }
                due = None;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(chunker),
        }
    }
}

impl Stream {
    /// Queues `record` for the uploader; never waits. A full queue ends
    /// streaming, as does an uploader that stopped.
    pub(crate) fn offer(&mut self, record: &TraceRecord) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(record.clone()) {
            Ok(()) => {}
            // The runs after it are read back from the trace at the end.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.queue = None,
        }
    }

    /// Closes the queue once the runs are done and waits for the uploader
    /// to send what it holds (under the upload's signal watchdog).
    pub(crate) fn close(mut self) -> Streamed {
        self.queue = None;
        let joined = self.uploader.join().unwrap_or_else(|_| {
            Err(Error::Unsupported {
                what: "internal error: the streaming uploader panicked".into(),
                hint: Some("please report this bug".into()),
            })
        });
        match joined {
            Ok(chunker) => Streamed::Going(Box::new(chunker)),
            Err(_) => Streamed::Stopped,
        }
    }
}

/// Sends the runs streaming has not sent and the last chunk, with the
/// batch as `info` states it once the run is reported. The runs added to
/// the chunker are the trace's first ones, in order (the run stage appends
/// each before offering it), so the rest is the trace after them.
pub(crate) fn finish(
    streamed: Streamed,
    client: &Client,
    dir: &Path,
    info: &BatchInfo<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Uploaded> {
    let mut chunker = match streamed {
        Streamed::Going(chunker) => *chunker,
        Streamed::Stopped => return upload::upload(client, dir, info, progress),
    };
    let to = Dest { client, dir };
    let mut skip = chunker.added();
    results::read_trace(dir, |r| {
        if skip > 0 {
            skip -= 1;
            return Ok(());
        }
        chunker.add(to, &r, info, progress)
    })?;
    chunker.finish(to, info, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> TraceRecord {
        TraceRecord {
            run_id: format!("r{i}"),
            ..Default::default()
        }
    }

    /// The producer never waits on the uploader: once the queue is full
    /// the runs after it stay in the trace only, for the end of the run.
    #[test]
    fn a_full_queue_ends_streaming_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let (queue, runs) = mpsc::sync_channel::<TraceRecord>(1);
        let (go, wait) = mpsc::channel::<()>();
        let uploader = std::thread::spawn(move || {
            wait.recv().unwrap();
            let got: Vec<String> = runs.iter().map(|r| r.run_id).collect();
            assert_eq!(got, ["r0"]);
            Chunker::open(&path, "bundle")
        });
        let mut stream = Stream {
            queue: Some(queue),
            uploader,
        };
        for i in 0..3 {
            stream.offer(&record(i));
        }
        assert!(
            stream.queue.is_none(),
            "streaming went on past a full queue"
        );
        go.send(()).unwrap();
        assert!(matches!(stream.close(), Streamed::Going(c) if c.added() == 0));
    }
}
