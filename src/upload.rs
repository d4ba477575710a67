//! Uploading a result directory (PLATFORM-API §5): the FluxLoop 0.4.0
//! payload built from `trace_summary.jsonl` streamed in chunks of at most
//! 1000 runs and 8 MiB of JSON, the first chunk's `run_batch_id` continuing
//! into the next ones.
//!
//! Each chunk's `Idempotency-Key` is the batch key, the chunk's index and
//! the SHA-256 of its body: a retry or a rerun after a crash sends the same
//! key for the same content, so the platform replays instead of storing
//! twice, and changed content (more runs than last time) gets a new key, so
//! it is stored instead of being answered with the old result. The batch key
//! and batch id are saved in the result directory before each chunk is sent.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::upload::{
    sync_upload, InputSnapshot, Message, Metrics, RunBatchHeader, RunEntry, RunResultEntry,
    ShardMark, UploadMeta, UploadPayload,
};
use crate::api::{paths, Client};
use crate::ci::CiInfo;
use crate::config::project::limits::Shard;
use crate::error::{Error, Result};
use crate::results::{read_trace, TraceRecord};

/// Most runs per request (the platform's limit).
pub(crate) const CHUNK: usize = 1000;
/// Most bytes of JSON per request: well under the platform's 32 MiB body
/// limit, and a size a proxy in front of it accepts too.
pub(crate) const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Room kept for the payload around the entries (batch, CI metadata).
const ENVELOPE: usize = 64 * 1024;
/// Progress of an upload, beside the results.
const STATE: &str = "upload_state.json";
/// The body of the chunk that opens a batch, while its answer is awaited.
const OPENING: &str = "upload_opening.json";

/// What the batch is.
pub(crate) struct BatchInfo<'a> {
    pub(crate) bundle_version_id: &'a str,
    pub(crate) started_at: &'a str,
    pub(crate) completed_at: &'a str,
    pub(crate) ci: &'a CiInfo,
    /// `run_batch.key` and `shard` of a sharded job (PLATFORM-API §5).
    pub(crate) batch_key: Option<&'a str>,
    pub(crate) shard: Option<Shard>,
}

/// A finished upload.
#[derive(Debug, Serialize)]
pub(crate) struct Uploaded {
    pub(crate) run_batch_id: String,
    pub(crate) runs: usize,
    pub(crate) chunks: usize,
    /// Runs whose transcript was cut to fit one request.
    pub(crate) truncated: usize,
    /// Every chunk was stored before: the platform replayed its answers.
    pub(crate) already: bool,
    /// The batch's web page, when the platform said.
    pub(crate) url: Option<String>,
}

/// `upload_state.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    bundle_version_id: String,
    #[serde(default)]
    run_batch_id: Option<String>,
    /// The first part of every chunk's Idempotency-Key.
    #[serde(default)]
    batch_key: Option<String>,
    #[serde(default)]
    chunks_done: usize,
    /// SHA-256 of `trace_summary.jsonl` when its upload finished: the same
    /// file again is a re-upload, which the platform stores nothing of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uploaded_trace_sha256: Option<String>,
}

fn status(success: bool) -> &'static str {
    if success {
        "completed"
    } else {
        "failed"
    }
}

/// `runs[]` and `run_results[]` entries of one record, as FluxLoop CLI 0.4 builds them.
pub(crate) fn run_entries(r: &TraceRecord) -> (RunEntry, RunResultEntry) {
    let meta = r.input_metadata.as_ref().and_then(Value::as_object);
    let meta_str = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let input_item_id = r
        .input_item_id
        .clone()
        .or_else(|| meta_str("input_item_id"))
        .or_else(|| meta_str("id"));
    let persona_id = r.persona.clone().or_else(|| meta_str("persona_id"));
    let user = |content: &str| Message {
        content: content.to_string(),
        role: "user",
    };
    let messages = meta
        .and_then(|m| m.get("messages"))
        .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
        .unwrap_or_else(|| {
            // A Message has no map keys to fail on.
            serde_json::to_value([user(&r.input)]).unwrap_or_default()
        });
    let metadata = meta
        .and_then(|m| m.get("metadata"))
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let snapshot_id = |k: &str| meta_str(k).filter(|s| !s.is_empty());
    let run = RunEntry {
        id: r.run_id.clone(),
        input_item_id,
        input_snapshot: InputSnapshot {
            id: snapshot_id("id"),
            input_set_id: snapshot_id("input_set_id"),
            messages,
            metadata,
            persona_id: snapshot_id("persona_id"),
            scenario_id: snapshot_id("scenario_id"),
        },
        persona_id,
        status: status(r.success),
    };
    let mut transcript = Vec::new();
    if !r.input.is_empty() {
        transcript.push(user(&r.input));
    }
    let reply = if !r.output.is_empty() {
        Some(r.output.as_str())
    } else {
        r.error_message()
    };
    if let Some(content) = reply {
        transcript.push(Message {
            content: content.to_string(),
            role: "assistant",
        });
    }
    let result = RunResultEntry {
        metrics: Metrics {
            attempts: r.attempts.unwrap_or(1),
            duration_ms: r.duration_ms,
            truncated: false,
            turn_count: r.turn_count.unwrap_or(0),
        },
        run_id: r.run_id.clone(),
        status: status(r.success),
        transcript,
    };
    (run, result)
}

/// One run's `runs[]` and `run_results[]` entries, serialised.
struct Entry {
    run: Box<RawValue>,
    result: Box<RawValue>,
    truncated: bool,
}

impl Entry {
    fn of(run: &RunEntry, result: &RunResultEntry) -> serde_json::Result<Entry> {
        Ok(Entry {
            run: serde_json::value::to_raw_value(run)?,
            result: serde_json::value::to_raw_value(result)?,
            truncated: result.metrics.truncated,
        })
    }

    fn len(&self) -> usize {
        self.run.get().len() + self.result.get().len() + 2
    }
}

/// The entries of `r`, cut to fit one request: a run too large to send has
/// its message contents shortened (the local results keep everything) and
/// `"truncated": true` in its metrics.
fn encode(r: &TraceRecord) -> serde_json::Result<Entry> {
    let (mut run, mut result) = run_entries(r);
    let limit = CHUNK_BYTES - ENVELOPE;
    let mut entry = Entry::of(&run, &result)?;
    // Characters can take up to 12 bytes once escaped, so halve until it fits.
    let mut max_chars = limit / 2;
    while entry.len() > limit && max_chars > 0 {
        for content in contents(&mut run, &mut result) {
            if let Some((cut, _)) = content.char_indices().nth(max_chars) {
                content.truncate(cut);
            }
        }
        result.metrics.truncated = true;
        entry = Entry::of(&run, &result)?;
        max_chars /= 2;
    }
    Ok(entry)
}

/// The message texts of a run's entries: what can be long.
fn contents<'a>(run: &'a mut RunEntry, result: &'a mut RunResultEntry) -> Vec<&'a mut String> {
    let messages = run
        .input_snapshot
        .messages
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(|m| match m.get_mut("content") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        });
    let transcript = result.transcript.iter_mut().map(|m| &mut m.content);
    messages.chain(transcript).collect()
}

/// One chunk's entries, each serialised the moment its record was read, so
/// neither the records nor a JSON tree of the chunk are ever held.
#[derive(Default)]
struct ChunkBody {
    runs: Vec<Box<RawValue>>,
    results: Vec<Box<RawValue>>,
    /// Bytes of the entries as they appear in the body, commas included.
    bytes: usize,
    len: usize,
}

impl ChunkBody {
    #[cfg(test)]
    fn add(&mut self, r: &TraceRecord) -> std::result::Result<(), serde_json::Error> {
        self.push(encode(r)?);
        Ok(())
    }

    fn push(&mut self, e: Entry) {
        if self.len > 0 {
            self.bytes += 2;
        }
        self.bytes += e.len() - 2;
        self.runs.push(e.run);
        self.results.push(e.result);
        self.len += 1;
    }

    /// Whether `e` must go into the next chunk instead.
    fn is_full_for(&self, e: &Entry) -> bool {
        self.len > 0 && (self.len >= CHUNK || self.bytes + e.len() > CHUNK_BYTES - ENVELOPE)
    }

    fn clear(&mut self) {
        self.runs.clear();
        self.results.clear();
        self.bytes = 0;
        self.len = 0;
    }

    /// The whole body: FluxLoop CLI 0.4's payload around the entries.
    fn to_payload(
        &self,
        info: &BatchInfo<'_>,
        batch_id: Option<&str>,
        last: bool,
    ) -> std::result::Result<Vec<u8>, serde_json::Error> {
        let payload = UploadPayload {
            bundle_version_id: info.bundle_version_id,
            run_batch: RunBatchHeader {
                completed_at: info.completed_at,
                execution_target: "local",
                id: batch_id,
                key: info.batch_key,
                started_at: info.started_at,
                status: "completed",
            },
            runs: &self.runs,
            turns: [],
            run_results: &self.results,
            upload_meta: UploadMeta::new(info.ci),
            shard: info.shard.map(|s| ShardMark {
                index: s.index,
                last,
                total: s.total,
            }),
        };
        let mut body = Vec::with_capacity(self.bytes + 1024);
        serde_json::to_writer(&mut body, &payload)?;
        Ok(body)
    }
}

fn load_state(dir: &Path, bundle: &str) -> State {
    std::fs::read(dir.join(STATE))
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
        .filter(|s| s.bundle_version_id == bundle)
        .unwrap_or_else(|| State {
            bundle_version_id: bundle.to_string(),
            ..State::default()
        })
}

/// Saved atomically: a torn file would lose the batch id, and a resumed
/// upload would then store the finished chunks again in a new batch.
fn save_state(dir: &Path, state: &State) -> Result<()> {
    let path = dir.join(STATE);
    let mut bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    bytes.push(b'\n');
    crate::atomic_file::write_atomic(&path, 0o644, |f| std::io::Write::write_all(f, &bytes))
        .map_err(|e| Error::io("write", &path, e))
}

/// Saved before the request that opens a batch, so a rerun can send the
/// very same body (and so the same Idempotency-Key) again: the chunk a
/// streaming job cut after two seconds is not the one a later upload of
/// the whole directory would cut.
fn save_opening(dir: &Path, body: &[u8]) -> Result<()> {
    let path = dir.join(OPENING);
    crate::atomic_file::write_atomic(&path, 0o600, |f| std::io::Write::write_all(f, body))
        .map_err(|e| Error::io("write", &path, e))
}

/// Whether the platform answered that it did not take the request: a
/// 4xx other than a timeout or a rate limit. A 5xx may come from a proxy
/// that gave up while the platform stored it.
fn refused(e: &Error) -> bool {
    matches!(e, Error::Api { status, .. } if (400..500).contains(status) && !matches!(status, 408 | 429))
}

/// Once the batch id is saved the opening body is not needed; a file left
/// by a failed removal is only sent again, which the platform replays.
fn remove_opening(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(OPENING));
}

/// SHA-256 of a file, hex; `None` when it cannot be read.
fn file_sha256(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The Idempotency-Key of chunk `index` with request body `body`.
fn chunk_key(batch_key: &str, index: usize, body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{batch_key}.{index}.{hex}")
}

/// Uploads the runs of result directory `dir`; `progress(sent, chunks)`
/// is called after each chunk with the runs and chunks stored so far.
pub(crate) fn upload(
    client: &Client,
    dir: &Path,
    info: &BatchInfo<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Uploaded> {
    let to = Dest { client, dir };
    let mut chunker = Chunker::open(dir, info.bundle_version_id)?;
    let trace_digest = file_sha256(&dir.join(crate::results::TRACE));
    let already = trace_digest.is_some() && chunker.state.uploaded_trace_sha256 == trace_digest;
    read_trace(dir, |r| chunker.add(to, &r, info, progress))?;
    let mut uploaded = chunker.finish(to, info, progress)?;
    uploaded.already = already;
    Ok(uploaded)
}

/// Where chunks go: the platform, and the result directory whose state
/// file records them.
#[derive(Clone, Copy)]
pub(crate) struct Dest<'a> {
    pub(crate) client: &'a Client,
    pub(crate) dir: &'a Path,
}

/// The chunks of one upload, sent as records are added: the upload of a
/// finished result directory reads them from its trace, a streaming one
/// (`test`) gets them while the runs go on. Either way a chunk goes out only
/// once the next record does not fit in it, so the last one is always left
/// for [`Chunker::finish`] to mark.
pub(crate) struct Chunker {
    state: State,
    chunk: ChunkBody,
    index: usize,
    sent: usize,
    /// Records added so far, sent or not.
    added: usize,
    truncated: usize,
    url: Option<String>,
}

impl Chunker {
    /// Resumes the upload state of `dir` (for runs of `bundle`), whose batch
    /// key is on disk before any request: a rerun after a crash reuses it,
    /// so the platform can recognise the chunks it already stored.
    pub(crate) fn open(dir: &Path, bundle: &str) -> Result<Self> {
        let mut state = load_state(dir, bundle);
        if state.batch_key.is_none() {
            state.batch_key = Some(uuid::Uuid::new_v4().to_string());
            save_state(dir, &state)?;
        }
        Ok(Chunker {
            state,
            chunk: ChunkBody::default(),
            index: 0,
            sent: 0,
            added: 0,
            truncated: 0,
            url: None,
        })
    }

    /// Records added so far.
    pub(crate) fn added(&self) -> usize {
        self.added
    }

    /// Runs added but not sent yet.
    pub(crate) fn pending(&self) -> usize {
        self.chunk.len
    }

    /// Adds `r`, first sending the chunk so far when `r` does not fit in it.
    pub(crate) fn add(
        &mut self,
        to: Dest<'_>,
        r: &TraceRecord,
        info: &BatchInfo<'_>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let entry = encode(r).map_err(|e| Error::io("encode", to.dir, e.into()))?;
        if self.chunk.is_full_for(&entry) {
            self.send(to, info, false, progress)?;
        }
        self.truncated += usize::from(entry.truncated);
        self.added += 1;
        self.chunk.push(entry);
        Ok(())
    }

    /// Sends what was added since the last chunk, even a chunk without runs
    /// (a `last` one that tells the platform the shard is done).
    pub(crate) fn send(
        &mut self,
        to: Dest<'_>,
        info: &BatchInfo<'_>,
        last: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        // A batch without a batch key is found again only by its id, which
        // the answer to its first chunk brings.
        let unkeyed = info.batch_key.is_none();
        if unkeyed && self.state.run_batch_id.is_none() {
            self.reopen(to)?;
        }
        let opens = unkeyed && self.state.run_batch_id.is_none();
        let state = &mut self.state;
        let body = self
            .chunk
            .to_payload(info, state.run_batch_id.as_deref(), last)
            .map_err(|e| Error::io("encode", to.dir, e.into()))?;
        let key = chunk_key(state.batch_key.as_deref().unwrap_or(""), self.index, &body);
        if opens {
            save_opening(to.dir, &body)?;
        }
        let resp = sync_upload(to.client, &body, &key).map_err(|e| {
            if opens && refused(&e) {
                remove_opening(to.dir);
            }
            too_large(e, self.index, self.chunk.len, body.len())
        })?;
        if self.url.is_none() {
            self.url = resp.url.clone();
        }
        same_batch(to.client, state, resp.run_batch_id, self.index)?;
        self.index += 1;
        state.chunks_done = state.chunks_done.max(self.index);
        save_state(to.dir, state)?;
        if opens {
            remove_opening(to.dir);
        }
        self.sent += self.chunk.len;
        progress(self.sent, self.index);
        self.chunk.clear();
        Ok(())
    }

    /// Sends again the chunk that opened this directory's batch when the
    /// answer naming the batch never reached the state file (the process
    /// died waiting for it): the platform replays that answer if it stored
    /// the chunk and stores it now if not, and either way the runs from here
    /// on go into that batch instead of a second one holding them again.
    fn reopen(&mut self, to: Dest<'_>) -> Result<()> {
        let path = to.dir.join(OPENING);
        let Ok(body) = std::fs::read(&path) else {
            return Ok(());
        };
        #[derive(Deserialize)]
        struct Opening {
            bundle_version_id: String,
        }
        let ours = serde_json::from_slice::<Opening>(&body)
            .is_ok_and(|o| o.bundle_version_id == self.state.bundle_version_id);
        if !ours {
            remove_opening(to.dir);
            return Ok(());
        }
        let key = chunk_key(self.state.batch_key.as_deref().unwrap_or(""), 0, &body);
        let resp = match sync_upload(to.client, &body, &key) {
            Ok(resp) => resp,
            // Refused for what it is, so never stored: the chunk cut now
            // opens the batch instead. (A refused credential is an error of
            // its own kind, not `Error::Api`, and stops the upload.)
            Err(e) if refused(&e) => {
                remove_opening(to.dir);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.url = resp.url;
        self.state.run_batch_id = Some(resp.run_batch_id);
        save_state(to.dir, &self.state)?;
        remove_opening(to.dir);
        Ok(())
    }

    /// Sends the last chunk: the runs still held, or none when a streaming
    /// upload already sent them all but the platform has yet to hear that
    /// the batch (or shard) is done. The trace as it is now is recorded as
    /// uploaded.
    pub(crate) fn finish(
        mut self,
        to: Dest<'_>,
        info: &BatchInfo<'_>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Uploaded> {
        if self.chunk.len > 0 || self.index > 0 {
            self.send(to, info, true, progress)?;
        }
        let trace = to.dir.join(crate::results::TRACE);
        let Some(run_batch_id) = self.state.run_batch_id.clone() else {
            return Err(Error::config(
                format!("no runs to upload in {}", trace.display()),
                Some("run `fluxloop test` first".into()),
            ));
        };
        self.state.uploaded_trace_sha256 = file_sha256(&trace);
        save_state(to.dir, &self.state)?;
        Ok(Uploaded {
            run_batch_id,
            runs: self.sent,
            chunks: self.index,
            truncated: self.truncated,
            already: false,
            url: self.url,
        })
    }
}

/// Every chunk of one upload lands in the batch the first one opened.
fn same_batch(client: &Client, state: &mut State, got: String, index: usize) -> Result<()> {
    match &state.run_batch_id {
        Some(id) if *id != got => Err(Error::Api {
            method: "POST",
            url: format!("{}{}", client.base(), paths::SYNC_UPLOAD),
            status: 200,
            code: None,
            message: format!(
                "the platform put chunk {} into run batch {got} instead of {id}",
                index + 1
            ),
        }),
        Some(_) => Ok(()),
        None => {
            state.run_batch_id = Some(got);
            Ok(())
        }
    }
}

/// Reports a shard with no runs as done, so its batch can complete: one
/// chunk without runs, marked last. Returns the batch id.
pub(crate) fn report_empty_shard(client: &Client, info: &BatchInfo<'_>) -> Result<String> {
    let body = ChunkBody::default()
        .to_payload(info, None, true)
        .map_err(|e| Error::io("encode", Path::new("upload"), e.into()))?;
    let key = chunk_key(info.batch_key.unwrap_or(""), 0, &body);
    let resp = sync_upload(client, &body, &key)?;
    Ok(resp.run_batch_id)
}

/// A 413 says which chunk was refused and how big it was: the platform's
/// limit is below what this client sends, which only its operator can change.
fn too_large(e: Error, index: usize, runs: usize, bytes: usize) -> Error {
    match e {
        Error::Api {
            method,
            url,
            status: 413,
            code,
            message,
        } => Error::Api {
            method,
            url,
            status: 413,
            code,
            message: format!(
                "the platform refused chunk {} ({runs} runs, {:.1} MiB) as too large ({message}); \
                 this client sends at most {} MiB per request, so ask the platform's operator to accept that",
                index + 1,
                bytes as f64 / (1024.0 * 1024.0),
                CHUNK_BYTES / (1024 * 1024)
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `run_entries(r)` as the JSON the platform receives.
    fn entries_json(r: &TraceRecord) -> (Value, Value) {
        let (run, result) = run_entries(r);
        (
            serde_json::to_value(run).unwrap(),
            serde_json::to_value(result).unwrap(),
        )
    }

    #[test]
    fn entries_follow_the_fluxloop_payload() {
        let r = TraceRecord {
            run_id: "r1".into(),
            input: "hi".into(),
            persona: Some("p1".into()),
            input_item_id: Some("i1".into()),
            input_metadata: Some(json!({"id": "i1", "persona_id": "p1",
                "messages": [{"role": "user", "content": "hi"}], "metadata": {"lang": "en"}})),
            output: "hello".into(),
            success: true,
            duration_ms: 12,
            turn_count: Some(1),
            ..Default::default()
        };
        let (run, result) = entries_json(&r);
        assert_eq!(
            run,
            json!({"id": "r1", "input_item_id": "i1", "persona_id": "p1", "status": "completed",
                "input_snapshot": {"messages": [{"role": "user", "content": "hi"}], "metadata": {"lang": "en"},
                    "id": "i1", "persona_id": "p1"}})
        );
        assert_eq!(
            result,
            json!({"run_id": "r1", "status": "completed",
                "transcript": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "metrics": {"duration_ms": 12, "turn_count": 1, "attempts": 1}})
        );
        let failed = TraceRecord {
            run_id: "r2".into(),
            input: "x".into(),
            success: false,
            ..Default::default()
        };
        let (run, result) = entries_json(&failed);
        assert_eq!(run["status"], "failed");
        assert_eq!(
            run["input_snapshot"]["messages"],
            json!([{"role": "user", "content": "x"}])
        );
        assert_eq!(
            result["transcript"][1],
            json!({"role": "assistant", "content": "Unknown error"})
        );
    }

    #[test]
    fn a_shard_sends_the_batch_key_and_which_shard_it_is() {
        let ci = CiInfo::default();
        let info = BatchInfo {
            bundle_version_id: "b",
            started_at: "s",
            completed_at: "c",
            ci: &ci,
            batch_key: Some("gitlab:77:support-bot"),
            shard: Some(Shard { index: 2, total: 4 }),
        };
        let chunk = ChunkBody::default();
        let p: Value =
            serde_json::from_slice(&chunk.to_payload(&info, None, false).unwrap()).unwrap();
        assert_eq!(p["run_batch"]["key"], "gitlab:77:support-bot");
        assert_eq!(p["shard"], json!({"index": 2, "total": 4, "last": false}));
        let p: Value =
            serde_json::from_slice(&chunk.to_payload(&info, Some("x"), true).unwrap()).unwrap();
        assert_eq!(p["shard"]["last"], true);
    }

    #[test]
    fn payload_continues_the_batch() {
        let ci = CiInfo {
            provider: Some("gitlab_ci".into()),
            ..Default::default()
        };
        let info = BatchInfo {
            bundle_version_id: "b",
            started_at: "s",
            completed_at: "c",
            ci: &ci,
            batch_key: None,
            shard: None,
        };
        let payload = |chunk: &ChunkBody, batch: Option<&str>| -> Value {
            serde_json::from_slice(&chunk.to_payload(&info, batch, true).unwrap()).unwrap()
        };
        let mut chunk = ChunkBody::default();
        let p = payload(&chunk, Some("batch-1"));
        assert_eq!(p["run_batch"]["id"], "batch-1");
        assert_eq!(p["runs"], json!([]));
        assert_eq!(p["turns"], json!([]));
        assert_eq!(p["run_results"], json!([]));
        assert_eq!(p["upload_meta"]["ci"]["provider"], "gitlab_ci");
        assert_eq!(p["upload_meta"]["ci"]["commit"], Value::Null);
        assert!(payload(&chunk, None)["run_batch"].get("id").is_none());
        // Entries stream in one by one and come out as run_entries builds them.
        let records: Vec<TraceRecord> = (0..3)
            .map(|i| TraceRecord {
                run_id: format!("r{i}"),
                input: format!("in {i}"),
                output: "out".into(),
                success: i != 1,
                ..Default::default()
            })
            .collect();
        for r in &records {
            chunk.add(r).unwrap();
        }
        let p = payload(&chunk, None);
        for (i, r) in records.iter().enumerate() {
            let (run, result) = entries_json(r);
            assert_eq!(p["runs"][i], run);
            assert_eq!(p["run_results"][i], result);
        }
        assert_eq!(p["bundle_version_id"], "b");
        chunk.clear();
        assert_eq!(payload(&chunk, None)["runs"], json!([]));
    }

    /// The bytes the hand-spliced `json!` payload had: the platform and the
    /// chunks' Idempotency-Keys (a hash of the body) see the same request.
    #[test]
    fn payload_bytes_are_unchanged() {
        let ci = CiInfo {
            provider: Some("gitlab_ci".into()),
            commit: Some("abc".into()),
            branch: Some("main".into()),
            build_url: None,
            pull_request: Some("7".into()),
        };
        let info = BatchInfo {
            bundle_version_id: "bv",
            started_at: "s",
            completed_at: "c",
            ci: &ci,
            batch_key: Some("k"),
            shard: Some(Shard { index: 1, total: 2 }),
        };
        let mut chunk = ChunkBody::default();
        chunk
            .add(&TraceRecord {
                run_id: "r1".into(),
                input: "hi".into(),
                persona: Some("p".into()),
                input_metadata: Some(json!({"id": "i1", "persona_id": "p1", "scenario_id": "",
                    "input_set_id": "s1", "messages": [{"role": "user", "content": "hi", "extra": 1}],
                    "metadata": {"z": 1, "a": 2}})),
                success: false,
                duration_ms: 3,
                turn_count: Some(2),
                attempts: Some(2),
                error: Some(crate::results::TraceError {
                    message: "boom".into(),
                    stderr: None,
                }),
                ..Default::default()
            })
            .unwrap();
        chunk
            .add(&TraceRecord {
                run_id: "r2".into(),
                output: "out".into(),
                success: true,
                ..Default::default()
            })
            .unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let got = chunk.to_payload(&info, Some("batch"), true).unwrap();
        let want = r#"{"bundle_version_id":"bv","run_batch":{"completed_at":"c","execution_target":"local","id":"batch","key":"k","started_at":"s","status":"completed"},"runs":[{"id":"r1","input_item_id":"i1","input_snapshot":{"id":"i1","input_set_id":"s1","messages":[{"content":"hi","extra":1,"role":"user"}],"metadata":{"a":2,"z":1},"persona_id":"p1"},"persona_id":"p","status":"failed"},{"id":"r2","input_item_id":null,"input_snapshot":{"messages":[{"content":"","role":"user"}],"metadata":{}},"persona_id":null,"status":"completed"}],"turns":[],"run_results":[{"metrics":{"attempts":2,"duration_ms":3,"turn_count":2},"run_id":"r1","status":"failed","transcript":[{"content":"hi","role":"user"},{"content":"boom","role":"assistant"}]},{"metrics":{"attempts":1,"duration_ms":0,"turn_count":0},"run_id":"r2","status":"completed","transcript":[{"content":"out","role":"assistant"}]}],"upload_meta":{"ci":{"branch":"main","build_url":null,"commit":"abc","provider":"gitlab_ci","pull_request":"7"},"cli_version":"VERSION","client":"fluxloop-rs"},"shard":{"index":1,"last":true,"total":2}}"#.replace("VERSION", version);
        assert_eq!(String::from_utf8(got).unwrap(), want);
        let plain = BatchInfo {
            batch_key: None,
            shard: None,
            ..info
        };
        let got = ChunkBody::default()
            .to_payload(&plain, None, false)
            .unwrap();
        let want = r#"{"bundle_version_id":"bv","run_batch":{"completed_at":"c","execution_target":"local","started_at":"s","status":"completed"},"runs":[],"turns":[],"run_results":[],"upload_meta":{"ci":{"branch":"main","build_url":null,"commit":"abc","provider":"gitlab_ci","pull_request":"7"},"cli_version":"VERSION","client":"fluxloop-rs"}}"#.replace("VERSION", version);
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn an_entry_too_large_is_cut_and_marked() {
        let big = TraceRecord {
            run_id: "big".into(),
            input: "é".repeat(CHUNK_BYTES),
            output: "x".repeat(100),
            success: true,
            ..Default::default()
        };
        let e = encode(&big).unwrap();
        assert!(e.truncated);
        assert!(e.len() <= CHUNK_BYTES - ENVELOPE, "{}", e.len());
        let result: Value = serde_json::from_str(e.result.get()).unwrap();
        assert_eq!(result["metrics"]["truncated"], true);
        assert_eq!(result["transcript"][1]["content"], "x".repeat(100));
        let mut chunk = ChunkBody::default();
        chunk.push(e);
        assert_eq!(chunk.len, 1);
    }
}
