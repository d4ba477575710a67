//! Run batches (PLATFORM-API §5 and its sharding extension): one batch read
//! back by id, or by the key the shards of one build shared.
//!
//! The answer is read leniently field by field, as the untyped getters
//! before did: a field that is missing or of another type reads as absent.

use serde::Deserialize;
use serde_json::Value;

use super::types::lenient;
use super::{paths, query_escape, Client};
use crate::error::Result;

/// Which batch.
#[derive(Clone, Debug)]
pub(crate) enum BatchRef {
    Id(String),
    /// The `run_batch.key` the shards of one build uploaded with.
    Key(String),
}

/// A run batch with its runs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunBatch {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) batch_key: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) created_at: Option<String>,
    /// The shards' progress, kept as sent: `report --json` passes it on
    /// whole, fields this client does not read included. `None` when the
    /// batch is not sharded.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) shards: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) runs: Vec<BatchRun>,
}

impl RunBatch {
    /// Shards that reported and shards in all, when the batch is sharded.
    pub(crate) fn shard_progress(&self) -> Option<(usize, usize)> {
        let s = self.shards.as_ref()?;
        Some((
            s["reported"].as_array().map_or(0, Vec::len),
            s["total"].as_u64().unwrap_or(0) as usize,
        ))
    }
}

/// A run of a batch, with its result.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchRun {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) input_item_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) input_snapshot: BatchSnapshot,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) result: BatchResult,
}

/// The input a run was given.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchSnapshot {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) messages: Vec<BatchMessage>,
}

/// The result of a run.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchResult {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) transcript: Vec<BatchMessage>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) metrics: BatchMetrics,
}

/// `metrics` of a result.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchMetrics {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) duration_ms: Option<u64>,
}

/// A message of an input or a transcript.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchMessage {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) role: Option<String>,
    /// Text only: structured contents read as absent.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) content: Option<String>,
}

/// `GET` of the batch `which` names.
pub(crate) fn run_batch(client: &Client, which: &BatchRef) -> Result<RunBatch> {
    let path = match which {
        BatchRef::Id(id) => format!("{}/{}", paths::RUN_BATCHES, query_escape(id)),
        BatchRef::Key(key) => format!("{}?key={}", paths::RUN_BATCHES, query_escape(key)),
    };
    client.get(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_leniently() {
        let b: RunBatch = serde_json::from_str(
            r#"{"id": "b1", "batch_key": 7, "shards": {"total": 2, "reported": [1], "extra": true},
                "runs": [{"id": "r1", "status": "failed", "input_snapshot": {"messages": [{"role": "user", "content": "hi"}]},
                          "result": {"status": "completed", "transcript": [{"role": "assistant", "content": [1]}],
                                     "metrics": {"duration_ms": 5}}}]}"#,
        )
        .unwrap();
        assert_eq!(b.id.as_deref(), Some("b1"));
        assert_eq!(b.batch_key, None);
        assert_eq!(b.shard_progress(), Some((1, 2)));
        assert_eq!(b.shards.as_ref().unwrap()["extra"], true);
        let r = &b.runs[0];
        assert_eq!(r.result.status.as_deref(), Some("completed"));
        assert_eq!(r.input_snapshot.messages[0].content.as_deref(), Some("hi"));
        assert_eq!(r.result.transcript[0].content, None);
        assert_eq!(r.result.metrics.duration_ms, Some(5));
        let none: RunBatch = serde_json::from_str(r#"{"shards": null}"#).unwrap();
        assert_eq!(none.shard_progress(), None);
    }
}
