//! `POST /api/sync/upload` (PLATFORM-API §5): FluxLoop CLI 0.4's payload,
//! sent in chunks.
//!
//! Every object's fields are declared in alphabetical order, except the
//! payload's own: the body was first built from `json!` maps, which
//! serde_json keeps sorted, around entries spliced in by hand in the
//! payload's order; the platform (and the chunk's Idempotency-Key, a hash
//! of the body) sees the same bytes now.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{paths, Client};
use crate::ci::CiInfo;
use crate::error::Result;

/// One chunk's request body. The entries are serialised one by one as the
/// trace is read ([`RawValue`]), so neither the records nor a JSON tree of
/// the chunk are ever held, and they are not parsed again to be sent.
#[derive(Debug, Serialize)]
pub(crate) struct UploadPayload<'a> {
    pub(crate) bundle_version_id: &'a str,
    pub(crate) run_batch: RunBatchHeader<'a>,
    /// [`RunEntry`]s, serialised.
    pub(crate) runs: &'a [Box<RawValue>],
    /// FluxLoop CLI 0.4 sends the conversation as each result's
    /// `transcript`; this list stays empty.
    pub(crate) turns: [(); 0],
    /// [`RunResultEntry`]s, serialised.
    pub(crate) run_results: &'a [Box<RawValue>],
    pub(crate) upload_meta: UploadMeta<'a>,
    /// Present only for a shard of a sharded job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shard: Option<ShardMark>,
}

/// `run_batch` of the payload.
#[derive(Debug, Serialize)]
pub(crate) struct RunBatchHeader<'a> {
    pub(crate) completed_at: &'a str,
    /// Always `local`: the runs happened on this machine.
    pub(crate) execution_target: &'static str,
    /// The batch the first chunk created, on every later chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<&'a str>,
    /// The key all shards of one build share (issue 17).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<&'a str>,
    pub(crate) started_at: &'a str,
    /// Always `completed`: a batch is uploaded once its runs are done.
    pub(crate) status: &'static str,
}

/// `upload_meta` of the payload: who sent it, from which build.
#[derive(Debug, Serialize)]
pub(crate) struct UploadMeta<'a> {
    pub(crate) ci: UploadCi<'a>,
    pub(crate) cli_version: &'static str,
    pub(crate) client: &'static str,
}

impl<'a> UploadMeta<'a> {
    /// This client, in the build `ci` describes.
    pub(crate) fn new(ci: &'a CiInfo) -> Self {
        UploadMeta {
            ci: UploadCi::from(ci),
            cli_version: env!("CARGO_PKG_VERSION"),
            client: "fluxloop-rs",
        }
    }
}

/// `upload_meta.ci`: [`CiInfo`] on the wire (absent facts are `null`).
#[derive(Debug, Serialize)]
pub(crate) struct UploadCi<'a> {
    pub(crate) branch: Option<&'a str>,
    pub(crate) build_url: Option<&'a str>,
    pub(crate) commit: Option<&'a str>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) pull_request: Option<&'a str>,
}

impl<'a> From<&'a CiInfo> for UploadCi<'a> {
    fn from(ci: &'a CiInfo) -> Self {
        UploadCi {
            branch: ci.branch.as_deref(),
            build_url: ci.build_url.as_deref(),
            commit: ci.commit.as_deref(),
            provider: ci.provider.as_deref(),
            pull_request: ci.pull_request.as_deref(),
        }
    }
}

/// `shard` of the payload.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct ShardMark {
    pub(crate) index: u32,
    /// This shard has sent all its runs, so the platform can count it as reported.
    pub(crate) last: bool,
    pub(crate) total: u32,
}

/// One `runs[]` entry.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunEntry {
    pub(crate) id: String,
    pub(crate) input_item_id: Option<String>,
    pub(crate) input_snapshot: InputSnapshot,
    pub(crate) persona_id: Option<String>,
    /// `completed` or `failed`.
    pub(crate) status: &'static str,
}

/// The input a run was given, as the platform should show it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct InputSnapshot {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) input_set_id: Option<String>,
    /// The input item's own messages, passed through as pulled (they may
    /// hold parts this client does not know), or the input text as one
    /// user [`Message`].
    pub(crate) messages: Value,
    /// The input item's own metadata object, passed through.
    pub(crate) metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) persona_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scenario_id: Option<String>,
}

/// One `run_results[]` entry.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunResultEntry {
    pub(crate) metrics: Metrics,
    pub(crate) run_id: String,
    /// `completed` or `failed`.
    pub(crate) status: &'static str,
    pub(crate) transcript: Vec<Message>,
}

/// `metrics` of a result.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Metrics {
    /// More than 1: it failed first and was retried (`--retries`).
    pub(crate) attempts: u32,
    pub(crate) duration_ms: u64,
    /// The transcript was cut to fit one request (the local results keep everything).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) truncated: bool,
    pub(crate) turn_count: u64,
}

/// A message of a transcript.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Message {
    pub(crate) content: String,
    /// `user` or `assistant`.
    pub(crate) role: &'static str,
}

/// The platform's answer to a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadResponse {
    pub(crate) run_batch_id: String,
    /// The batch's web page (an extension the local platform sends).
    #[serde(default)]
    pub(crate) url: Option<String>,
}

/// Sends one chunk (its bytes, already encoded: the Idempotency-Key is a
/// hash of them).
pub(crate) fn sync_upload(client: &Client, body: &[u8], key: &str) -> Result<UploadResponse> {
    client.post_idempotent(paths::SYNC_UPLOAD, body, key)
}
