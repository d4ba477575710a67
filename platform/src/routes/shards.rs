//! Sharded jobs (PLATFORM-API §5, extension): the shards of one CI build
//! upload with the same `run_batch.key` and append to one batch. The first
//! chunk of a shard (no `run_batch.id`) starts it afresh: runs an earlier
//! attempt of that shard stored are removed, so a shard killed and rerun
//! leaves each run once. The chunk marked `shard.last` records the shard as
//! reported; the batch is `completed` when all of them have.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Need;
use crate::http::{ApiError, Request, Response};
use crate::routes::authed;
use crate::store::State;
use crate::util::{new_id, now_ms};

/// Longest accepted batch key.
const MAX_KEY: usize = 300;
/// Most shards of one batch (the CLI's limit too).
const MAX_SHARDS: u32 = 10_000;

/// `shard` of an upload.
#[derive(Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShardIn {
    index: Option<u32>,
    total: Option<u32>,
    #[serde(default)]
    last: bool,
}

/// A checked shard: `index` 1-based.
#[derive(Clone, Copy)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    total: u32,
    last: bool,
}

/// Checks `run_batch.key` and `shard` before anything is stored.
pub(crate) fn check(key: Option<&str>, shard: Option<ShardIn>) -> Result<Option<Shard>, ApiError> {
    if let Some(k) = key {
        if k.trim().is_empty() || k.len() > MAX_KEY || k.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "run_batch.key must be 1 to {MAX_KEY} printable characters"
            )));
        }
    }
    let Some(s) = shard else {
        return Ok(None);
    };
    if key.is_none() {
        return Err(ApiError::invalid(
            "shard needs run_batch.key: the key names the batch the shards share".to_owned(),
        ));
    }
    match (s.index, s.total) {
        (Some(index), Some(total))
            if (1..=MAX_SHARDS).contains(&total) && (1..=total).contains(&index) =>
        {
            Ok(Some(Shard {
                index,
                total,
                last: s.last,
            }))
        }
        _ => Err(ApiError::unprocessable(format!(
            "shard must be {{\"index\": I, \"total\": N}} with 1 <= I <= N <= {MAX_SHARDS}"
        ))),
    }
}

/// What a new keyed batch is made of.
pub(crate) struct NewBatch<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) bundle_id: &'a str,
    pub(crate) execution_target: &'a str,
    pub(crate) started_at: Option<&'a str>,
    pub(crate) upload_meta: String,
}

/// The batch of `key` (made on first sight), for a chunk without
/// `run_batch.id`. A shard of another bundle gets 409.
pub(crate) fn batch_for_key(
    tx: &Transaction<'_>,
    key: &str,
    shard: Option<Shard>,
    new: NewBatch<'_>,
) -> Result<String, ApiError> {
    let found: Option<(String, String, Option<u32>)> = tx
        .query_row(
            "SELECT id, bundle_version_id, shard_total FROM run_batches WHERE project_id = ?1 AND batch_key = ?2",
            params![new.project_id, key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let id = match found {
        Some((id, bundle, total)) => {
            if bundle != new.bundle_id {
                return Err(ApiError::new(
                    409,
                    "bundle_mismatch",
                    format!(
                        "run batch {id} (key {key}) holds results of bundle version {bundle}, but this upload is of bundle version {}: every shard must run the same bundle (pull it with --bundle-version-id {bundle})",
                        new.bundle_id
                    ),
                ));
            }
            if let (Some(s), Some(t)) = (shard, total) {
                if s.total != t {
                    return Err(ApiError::new(
                        409,
                        "shard_mismatch",
                        format!(
                            "run batch {id} (key {key}) is split into {t} shards, not {}",
                            s.total
                        ),
                    ));
                }
            }
            id
        }
        None => {
            let id = new_id();
            tx.execute(
                "INSERT INTO run_batches (id, project_id, bundle_version_id, status, execution_target,
                     started_at, completed_at, upload_meta, created_ms, batch_key, shard_total)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    new.project_id,
                    new.bundle_id,
                    if shard.is_some() { "running" } else { "completed" },
                    new.execution_target,
                    new.started_at,
                    new.upload_meta,
                    now_ms(),
                    key,
                    shard.map(|s| s.total)
                ],
            )?;
            id
        }
    };
    if let Some(s) = shard {
        // A shard's first chunk: what an earlier attempt of it stored goes.
        for sql in [
            "DELETE FROM turns WHERE batch_id = ?1 AND run_id IN (SELECT id FROM runs WHERE batch_id = ?1 AND shard_index = ?2)",
            "DELETE FROM runs WHERE batch_id = ?1 AND shard_index = ?2",
            "DELETE FROM run_batch_shards WHERE batch_id = ?1 AND shard_index = ?2",
        ] {
            tx.execute(sql, params![id, s.index])?;
        }
    }
    Ok(id)
}

/// After the runs of a chunk are stored: the shard's runs are counted and
/// a shard's last chunk records it; the batch completes with its last shard.
pub(crate) fn after_chunk(
    tx: &Transaction<'_>,
    batch_id: &str,
    shard: Option<Shard>,
    completed_at: Option<&str>,
) -> Result<(), ApiError> {
    let Some(s) = shard else {
        return Ok(());
    };
    if !s.last {
        return Ok(());
    }
    let runs: i64 = tx.query_row(
        "SELECT COUNT(*) FROM runs WHERE batch_id = ?1 AND shard_index = ?2",
        params![batch_id, s.index],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO run_batch_shards (batch_id, shard_index, runs, reported_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (batch_id, shard_index) DO UPDATE SET runs = excluded.runs, reported_ms = excluded.reported_ms",
        params![batch_id, s.index, runs, now_ms()],
    )?;
    let reported: u32 = tx.query_row(
        "SELECT COUNT(*) FROM run_batch_shards WHERE batch_id = ?1",
        [batch_id],
        |r| r.get(0),
    )?;
    let status = if reported >= s.total {
        "completed"
    } else {
        "running"
    };
    tx.execute(
        "UPDATE run_batches SET status = ?1, completed_at = CASE WHEN ?1 = 'completed' THEN COALESCE(?2, completed_at) ELSE completed_at END WHERE id = ?3",
        params![status, completed_at, batch_id],
    )?;
    Ok(())
}

/// The key and shards of batch `id`, for its JSON: `batch_key`, and
/// `shards: {total, reported: [{index, runs}]}` when it is sharded.
pub(crate) fn facts(conn: &Connection, id: &str) -> Result<Value, ApiError> {
    let (key, total): (Option<String>, Option<u32>) = conn.query_row(
        "SELECT batch_key, shard_total FROM run_batches WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare(
        "SELECT shard_index, runs FROM run_batch_shards WHERE batch_id = ?1 ORDER BY shard_index",
    )?;
    let reported = stmt
        .query_map([id], |r| {
            Ok(json!({"index": r.get::<_, u32>(0)?, "runs": r.get::<_, i64>(1)?}))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "batch_key": key,
        "shards": total.map(|t| json!({"total": t, "reported": reported})),
    }))
}

/// `GET /api/run-batches?key=K`: the batch of that key, with its runs.
pub(crate) fn find(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let key = req.query("key").filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::invalid("key is required: GET /api/run-batches?key=K".to_owned())
    })?;
    let not_found = || ApiError::not_found(format!("no run batch has key {key}"));
    let mut stmt = conn.prepare(
        "SELECT id, project_id FROM run_batches WHERE batch_key = ?1 ORDER BY created_ms DESC",
    )?;
    let candidates = stmt
        .query_map([key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let id = candidates
        .into_iter()
        .find(|(_, project)| principal.check_project(&conn, project).is_ok())
        .map(|(id, _)| id)
        .ok_or_else(not_found)?;
    let (_, batch) = super::sync::load_batch(&conn, &id)?.ok_or_else(not_found)?;
    Ok(Response::json(200, &batch))
}
