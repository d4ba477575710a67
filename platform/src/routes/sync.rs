//! Sync (PLATFORM-API §4–5): pull a bundle's inputs, personas and criteria;
//! upload run results into a run batch (idempotent, chunk-appendable); read a
//! batch back.
//!
//! Exactly-once: a repeated `Idempotency-Key` with the same body replays the
//! first successful response without touching the data (with another body it
//! is refused, 422 `idempotency_mismatch`), and independently a run id already in
//! the batch is never stored twice, so even a client that retries without the
//! header cannot duplicate runs.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::{Need, Principal};
use crate::http::{ApiError, Request, Response};
use crate::routes::{authed, shards};
use crate::store::State;
use crate::util::{is_rfc3339, new_id, now_ms, rfc3339};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Run statuses of PLATFORM-API §5.
const RUN_STATUSES: [&str; 2] = ["completed", "failed"];

/// Body of `POST /api/sync/pull`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullBody {
    project_id: Option<String>,
    bundle_version_id: Option<String>,
    scenario_id: Option<String>,
    include_inputs: Option<bool>,
    include_personas: Option<bool>,
    include_criteria: Option<bool>,
    /// Facts about the client (`cli_version`) that FluxLoop CLI 0.4 clients
    /// send with a pull; accepted so such a client is not refused, and unused
    /// because the answer does not depend on the client.
    #[serde(rename = "client_meta")]
    _client_meta: Option<Map<String, Value>>,
}

/// A bundle version row: (id, project, scenario, version, input set).
type Bundle = (String, String, String, i64, String);

fn bundle_where(conn: &Connection, clause: &str, arg: &str) -> Result<Option<Bundle>, ApiError> {
    let sql = format!(
        "SELECT id, project_id, scenario_id, version, input_set_id FROM bundle_versions
         WHERE status = 'published' AND {clause}
         ORDER BY created_ms DESC, version DESC, rowid DESC LIMIT 1"
    );
    Ok(conn
        .query_row(&sql, [arg], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?)
}

pub(crate) fn pull(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: PullBody = req.json()?;
    let (conn, principal) = authed(state, req, Need::Read)?;
    if let Some(p) = &body.project_id {
        principal.check_project(&conn, p)?;
    }
    let bundle = find_bundle(&conn, &principal, &body)?;
    let (bundle_id, project_id, scenario_id, version, input_set_id) = bundle;
    // A published bundle never changes, so its id (and what was asked for)
    // names the answer: a client that has it gets 304 and keeps its files.
    let flags = [
        body.include_inputs,
        body.include_personas,
        body.include_criteria,
    ]
    .map(|f| if f.unwrap_or(true) { '1' } else { '0' });
    let etag = format!("\"{bundle_id}.{}\"", flags.iter().collect::<String>());
    let matches = |v: &str| v.split(',').any(|t| t.trim() == etag || t.trim() == "*");
    if req.header("if-none-match").is_some_and(matches) {
        return Ok(Response::not_modified(etag));
    }
    let inputs = if body.include_inputs.unwrap_or(true) {
        read_inputs(&conn, &input_set_id)?
    } else {
        Vec::new()
    };
    let personas = if body.include_personas.unwrap_or(true) {
        read_personas(&conn, &bundle_id)?
    } else {
        Vec::new()
    };
    let criteria = if body.include_criteria.unwrap_or(true) {
        read_criteria(&conn, &bundle_id)?
    } else {
        Vec::new()
    };
    let (sname, goal): (String, String) = conn.query_row(
        "SELECT name, goal FROM scenarios WHERE id = ?1",
        [&scenario_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Response::json(
        200,
        &json!({
            "bundle_version": {"id": bundle_id, "project_id": project_id, "scenario_id": scenario_id, "version": version},
            "input_set": {"id": input_set_id},
            "input_items": inputs,
            "personas": personas,
            "criteria_pack": criteria,
            "scenario_context": {"scenario": {"id": scenario_id, "name": sname, "goal": goal}},
            "run_spec_snapshot": {},
            "sync_meta": {"pulled_at": rfc3339(now_ms())},
        }),
    )
    .with_header("etag", etag))
}

/// The published bundle a pull asks for: the bundle version named, else the
/// newest of the scenario named, else the newest of the project; a bundle
/// the caller may not see reads as not found.
fn find_bundle(
    conn: &Connection,
    principal: &Principal,
    body: &PullBody,
) -> Result<Bundle, ApiError> {
    let in_project = |project: &str| body.project_id.as_deref().is_none_or(|p| p == project);
    if let Some(id) = &body.bundle_version_id {
        let not_found = || ApiError::not_found(format!("bundle version {id} not found"));
        let b = bundle_where(conn, "id = ?1", id)?.ok_or_else(not_found)?;
        principal
            .check_project(conn, &b.1)
            .map_err(|_| not_found())?;
        if !in_project(&b.1) {
            return Err(not_found());
        }
        Ok(b)
    } else if let Some(sid) = &body.scenario_id {
        let not_found = || ApiError::not_found(format!("scenario {sid} not found"));
        let project: String = conn
            .query_row(
                "SELECT project_id FROM scenarios WHERE id = ?1",
                [sid],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(not_found)?;
        principal
            .check_project(conn, &project)
            .map_err(|_| not_found())?;
        if !in_project(&project) {
            return Err(not_found());
        }
        bundle_where(conn, "scenario_id = ?1", sid)?
            .ok_or_else(|| ApiError::not_found(format!("scenario {sid} has no published bundle")))
    } else {
        let project = principal.resolve_project(conn, body.project_id.as_deref())?;
        bundle_where(conn, "project_id = ?1", &project)?.ok_or_else(|| {
            ApiError::not_found(format!("project {project} has no published bundle"))
        })
    }
}

/// The input items of an input set, in order.
fn read_inputs(conn: &Connection, input_set_id: &str) -> Result<Vec<Value>, ApiError> {
    let mut stmt = conn.prepare(
        "SELECT id, persona_id, messages, metadata FROM input_items WHERE input_set_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([input_set_id], |r| {
        Ok(json!({
            "id": r.get::<_, String>(0)?,
            "persona_id": r.get::<_, Option<String>>(1)?,
            "messages": parse_stored(&r.get::<_, String>(2)?),
            "metadata": parse_stored(&r.get::<_, String>(3)?),
        }))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The personas of a bundle version, in order.
fn read_personas(conn: &Connection, bundle_id: &str) -> Result<Vec<Value>, ApiError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, description FROM personas WHERE bundle_version_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([bundle_id], |r| {
        Ok(json!({"id": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "description": r.get::<_, String>(2)?}))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The criteria of a bundle version, in order.
fn read_criteria(conn: &Connection, bundle_id: &str) -> Result<Vec<Value>, ApiError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, type, description FROM criteria WHERE bundle_version_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([bundle_id], |r| {
        Ok(json!({
            "id": r.get::<_, String>(0)?,
            "name": r.get::<_, String>(1)?,
            "type": r.get::<_, String>(2)?,
            "description": r.get::<_, String>(3)?,
        }))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
/// Reads a JSON column written by this server; a hand-edited broken value
/// reads as null rather than failing the whole response.
fn parse_stored(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    bundle_version_id: Option<String>,
    run_batch: Option<BatchIn>,
    runs: Option<Vec<RunIn>>,
    turns: Option<Vec<TurnIn>>,
    run_results: Option<Vec<ResultIn>>,
    upload_meta: Option<Map<String, Value>>,
    /// Which shard of a sharded job this is (extension).
    shard: Option<shards::ShardIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    id: Option<String>,
    /// The batch the shards of one CI build share (extension).
    key: Option<String>,
    execution_target: Option<String>,
    status: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunIn {
    id: Option<String>,
    input_item_id: Option<String>,
    persona_id: Option<String>,
    status: Option<String>,
    input_snapshot: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnIn {
    run_id: Option<String>,
    turn_id: Option<String>,
    sequence: Option<i64>,
    role: Option<String>,
    content: Option<String>,
    timestamp: Option<String>,
    duration_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultIn {
    run_id: Option<String>,
    status: Option<String>,
    transcript: Option<Vec<Map<String, Value>>>,
    metrics: Option<Map<String, Value>>,
}

pub(crate) fn upload(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Write)?;
    let idem = match req.header("idempotency-key").map(str::trim) {
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY => {
            return Err(ApiError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )))
        }
        other => other.map(str::to_owned),
    };
    // Keys are remembered per project for keys, per user for login tokens.
    let idem_scope = match &principal {
        Principal::Key(k) => k.project_id.clone(),
        Principal::User { user_id, .. } => format!("user:{user_id}"),
    };
    let body_hash = Sha256::digest(&req.body).to_vec();
    if let Some(key) = &idem {
        let stored: Option<(u16, String, Option<Vec<u8>>)> = conn
            .query_row(
                "SELECT status, body, body_hash FROM idempotency WHERE project_id = ?1 AND key = ?2",
                params![idem_scope, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match stored {
            // Stripe's rule: the first answer belongs to the first body only;
            // replaying it for other content would report runs as stored
            // that never were.
            Some((_, _, Some(hash))) if hash != body_hash => {
                return Err(ApiError::new(
                    422,
                    "idempotency_mismatch",
                    format!(
                        "Idempotency-Key {key} was already used with a different request body; send new content with a new key"
                    ),
                ))
            }
            Some((status, body, _)) => return Ok(Response::raw_json(status, body)),
            None => {}
        }
    }
    let body: UploadBody = req.json()?;
    let mut result = store_upload(&conn, &principal, body, state.max_runs_per_request)?;
    // The batch's page for people (PLATFORM-API §5 `url`, extension).
    if let Some(id) = result.get("run_batch_id").and_then(Value::as_str) {
        let url = format!("{}/run-batches/{id}", req.base_url());
        result["url"] = Value::String(url);
    }
    let text = result.to_string();
    if let Some(key) = &idem {
        // Only a success is remembered: a refused request stored nothing, so
        // retrying it with the same key must be allowed to succeed.
        conn.execute(
            "INSERT OR IGNORE INTO idempotency (project_id, key, status, body, body_hash, created_ms) VALUES (?1, ?2, 200, ?3, ?4, ?5)",
            params![idem_scope, key, text, body_hash, now_ms()],
        )?;
    }
    Ok(Response::raw_json(200, text))
}

/// An upload that passed every check, ready to store.
struct CheckedUpload {
    project_id: String,
    bundle_id: String,
    batch: BatchIn,
    shard: Option<shards::Shard>,
    /// The batch's status to record; `None` for a sharded batch, whose
    /// status is the platform's to say.
    status: Option<String>,
    /// Likewise its completion time.
    completed_at: Option<String>,
    runs: Vec<RunIn>,
    /// The id each run is stored under, in request order.
    ids: Vec<String>,
    results: Vec<ResultIn>,
    turns: Vec<TurnIn>,
    upload_meta: Option<Map<String, Value>>,
}

/// Validates and stores one upload; returns the response body.
fn store_upload(
    conn: &Connection,
    principal: &Principal,
    body: UploadBody,
    max_runs: usize,
) -> Result<Value, ApiError> {
    let mut up = check_upload(conn, principal, body, max_runs)?;
    let tx = conn.unchecked_transaction()?;
    let batch_id = open_batch(&tx, &mut up)?;
    store_runs(
        &tx,
        &batch_id,
        up.shard,
        std::mem::take(&mut up.runs),
        &up.ids,
    )?;
    store_results(&tx, &batch_id, std::mem::take(&mut up.results))?;
    store_turns(&tx, &batch_id, std::mem::take(&mut up.turns))?;
    shards::after_chunk(&tx, &batch_id, up.shard, up.batch.completed_at.as_deref())?;
    tx.commit()?;
    // Each id once, in request order.
    let mut ids = up.ids;
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(json!({"run_batch_id": batch_id, "run_ids": ids}))
}

/// Checks everything about an upload that can be checked before storing,
/// so a bad request stores nothing.
fn check_upload(
    conn: &Connection,
    principal: &Principal,
    body: UploadBody,
    max_runs: usize,
) -> Result<CheckedUpload, ApiError> {
    let bundle_id = body
        .bundle_version_id
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::invalid("bundle_version_id is required".to_owned()))?;
    let not_found = || ApiError::not_found(format!("bundle version {bundle_id} not found"));
    let project_id: String = conn
        .query_row(
            "SELECT project_id FROM bundle_versions WHERE id = ?1",
            [&bundle_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(not_found)?;
    principal
        .check_project(conn, &project_id)
        .map_err(|_| not_found())?;
    let runs = body
        .runs
        .ok_or_else(|| ApiError::invalid("runs is required".to_owned()))?;
    // Larger uploads come in chunks (1000 runs per request unless the server
    // was started with --max-runs-per-request).
    if runs.len() > max_runs {
        return Err(ApiError::unprocessable(format!(
            "{} runs in one request; send at most {max_runs} per request and append the rest with run_batch.id",
            runs.len()
        )));
    }
    let batch = body.run_batch.unwrap_or(BatchIn {
        id: None,
        key: None,
        execution_target: None,
        status: None,
        started_at: None,
        completed_at: None,
    });
    check_batch_times(&batch)?;
    let shard = shards::check(batch.key.as_deref(), body.shard)?;
    // A sharded batch's status is the platform's to say: completed once
    // every shard reported, whatever each chunk claims.
    let (status, completed_at) = match shard {
        Some(_) => (None, None),
        None => (batch.status.clone(), batch.completed_at.clone()),
    };
    let ids = run_ids(&runs)?;
    let results = body.run_results.unwrap_or_default();
    check_results(&results)?;
    Ok(CheckedUpload {
        project_id,
        bundle_id,
        batch,
        shard,
        status,
        completed_at,
        runs,
        ids,
        results,
        turns: body.turns.unwrap_or_default(),
        upload_meta: body.upload_meta,
    })
}

/// `run_batch.started_at` and `completed_at` must be RFC 3339 when given.
fn check_batch_times(batch: &BatchIn) -> Result<(), ApiError> {
    for (name, t) in [
        ("started_at", &batch.started_at),
        ("completed_at", &batch.completed_at),
    ] {
        if let Some(t) = t.as_deref().filter(|t| !is_rfc3339(t)) {
            return Err(ApiError::unprocessable(format!(
                "run_batch.{name} must be an RFC 3339 timestamp, not `{t}`"
            )));
        }
    }
    Ok(())
}

/// Checks each run's status; returns the id each is stored under (a new
/// one for a run sent without).
fn run_ids(runs: &[RunIn]) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        let status = run.status.as_deref().unwrap_or("");
        if !RUN_STATUSES.contains(&status) {
            return Err(ApiError::unprocessable(format!(
                "runs[{i}].status must be `completed` or `failed`, not `{status}`"
            )));
        }
        ids.push(
            run.id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(new_id),
        );
    }
    Ok(ids)
}

/// Checks each result's status and transcript messages.
fn check_results(results: &[ResultIn]) -> Result<(), ApiError> {
    for (i, r) in results.iter().enumerate() {
        if let Some(s) = r.status.as_deref().filter(|s| !RUN_STATUSES.contains(s)) {
            return Err(ApiError::unprocessable(format!(
                "run_results[{i}].status must be `completed` or `failed`, not `{s}`"
            )));
        }
        for (j, m) in r.transcript.iter().flatten().enumerate() {
            if !m.get("role").is_some_and(Value::is_string)
                || m.get("content")
                    .is_some_and(|c| !c.is_string() && !c.is_null())
            {
                return Err(ApiError::invalid(format!(
                    "run_results[{i}].transcript[{j}] must have a string `role` and string `content`"
                )));
            }
        }
    }
    Ok(())
}

/// The batch this upload goes into: the one named by `run_batch.id`
/// (updated), the one of its `run_batch.key`, or a new one.
fn open_batch(tx: &Transaction<'_>, up: &mut CheckedUpload) -> Result<String, ApiError> {
    let upload_meta = up.upload_meta.take();
    match up.batch.id.clone().filter(|b| !b.is_empty()) {
        Some(id) => {
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT project_id, bundle_version_id FROM run_batches WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match found {
                Some((p, b)) if p == up.project_id => {
                    if b != up.bundle_id {
                        return Err(ApiError::unprocessable(format!(
                            "run batch {id} belongs to bundle version {b}, not {}",
                            up.bundle_id
                        )));
                    }
                }
                _ => return Err(ApiError::not_found(format!("run batch {id} not found"))),
            }
            tx.execute(
                "UPDATE run_batches SET status = COALESCE(?1, status),
                     completed_at = COALESCE(?2, completed_at),
                     upload_meta = COALESCE(?3, upload_meta) WHERE id = ?4",
                params![
                    up.status,
                    up.completed_at,
                    upload_meta.map(|m| Value::Object(m).to_string()),
                    id
                ],
            )?;
            Ok(id)
        }
        None if up.batch.key.is_some() => shards::batch_for_key(
            tx,
            up.batch.key.as_deref().unwrap_or_default(),
            up.shard,
            shards::NewBatch {
                project_id: &up.project_id,
                bundle_id: &up.bundle_id,
                execution_target: up.batch.execution_target.as_deref().unwrap_or("local"),
                started_at: up.batch.started_at.as_deref(),
                upload_meta: Value::Object(upload_meta.unwrap_or_default()).to_string(),
            },
        ),
        None => {
            let id = new_id();
            tx.execute(
                "INSERT INTO run_batches (id, project_id, bundle_version_id, status, execution_target,
                     started_at, completed_at, upload_meta, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    up.project_id,
                    up.bundle_id,
                    up.status.take().unwrap_or_else(|| "completed".to_owned()),
                    up.batch
                        .execution_target
                        .take()
                        .unwrap_or_else(|| "local".to_owned()),
                    up.batch.started_at,
                    up.completed_at,
                    Value::Object(upload_meta.unwrap_or_default()).to_string(),
                    now_ms()
                ],
            )?;
            Ok(id)
        }
    }
}

/// Stores the runs after the batch's last one; a run id already in the
/// batch is kept as it was.
fn store_runs(
    tx: &Transaction<'_>,
    batch_id: &str,
    shard: Option<shards::Shard>,
    runs: Vec<RunIn>,
    ids: &[String],
) -> Result<(), ApiError> {
    // After the largest: a rerun shard's removed runs leave gaps.
    let mut position: i64 = tx.query_row(
        "SELECT COALESCE(MAX(position) + 1, 0) FROM runs WHERE batch_id = ?1",
        [batch_id],
        |r| r.get(0),
    )?;
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO runs (batch_id, id, position, input_item_id, persona_id, status, input_snapshot, shard_index)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (run, id) in runs.into_iter().zip(ids) {
        let snapshot = Value::Object(run.input_snapshot.unwrap_or_default()).to_string();
        let added = insert.execute(params![
            batch_id,
            id,
            position,
            run.input_item_id,
            run.persona_id,
            run.status,
            snapshot,
            shard.map(|s| s.index)
        ])?;
        position += i64::try_from(added).unwrap_or(0);
    }
    Ok(())
}

/// Records each result on its run (once: a run that has one keeps it).
fn store_results(
    tx: &Transaction<'_>,
    batch_id: &str,
    results: Vec<ResultIn>,
) -> Result<(), ApiError> {
    let mut set_result = tx.prepare(
        "UPDATE runs SET result_status = ?1, transcript = ?2, metrics = ?3
         WHERE batch_id = ?4 AND id = ?5 AND result_status IS NULL",
    )?;
    // Prepared once per chunk, like the inserts: a statement parsed per
    // row was most of the ingest time after the inserts themselves.
    let mut run_exists = tx.prepare("SELECT 1 FROM runs WHERE batch_id = ?1 AND id = ?2")?;
    for (i, r) in results.into_iter().enumerate() {
        let run_id = r.run_id.unwrap_or_default();
        if !run_exists.exists(params![batch_id, run_id])? {
            return Err(ApiError::unprocessable(format!(
                "run_results[{i}].run_id `{run_id}` matches no run of this batch"
            )));
        }
        let transcript = Value::Array(
            r.transcript
                .unwrap_or_default()
                .into_iter()
                .map(Value::Object)
                .collect(),
        );
        set_result.execute(params![
            r.status.unwrap_or_else(|| "completed".to_owned()),
            transcript.to_string(),
            Value::Object(r.metrics.unwrap_or_default()).to_string(),
            batch_id,
            run_id
        ])?;
    }
    Ok(())
}

/// Stores the turns; a turn id already stored is kept as it was.
fn store_turns(tx: &Transaction<'_>, batch_id: &str, turns: Vec<TurnIn>) -> Result<(), ApiError> {
    let mut insert_turn = tx.prepare(
        "INSERT OR IGNORE INTO turns (batch_id, run_id, turn_id, sequence, role, content, timestamp, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, t) in turns.into_iter().enumerate() {
        let run_id = t.run_id.unwrap_or_default();
        let turn_id = t
            .turn_id
            .unwrap_or_else(|| format!("{run_id}-t{}", t.sequence.unwrap_or(i as i64)));
        insert_turn.execute(params![
            batch_id,
            run_id,
            turn_id,
            t.sequence,
            t.role,
            t.content,
            t.timestamp,
            t.duration_ms.map(|d| d.round() as i64)
        ])?;
    }
    Ok(())
}

/// The batch with its runs, and its project id; `None` when unknown.
pub(crate) fn load_batch(conn: &Connection, id: &str) -> Result<Option<(String, Value)>, ApiError> {
    let row = conn
        .query_row(
            "SELECT id, bundle_version_id, project_id, status, execution_target, started_at,
                    completed_at, created_ms, upload_meta FROM run_batches WHERE id = ?1",
            [id],
            |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "bundle_version_id": r.get::<_, String>(1)?,
                    "project_id": r.get::<_, String>(2)?,
                    "status": r.get::<_, String>(3)?,
                    "execution_target": r.get::<_, String>(4)?,
                    "started_at": r.get::<_, Option<String>>(5)?,
                    "completed_at": r.get::<_, Option<String>>(6)?,
                    "created_at": rfc3339(r.get(7)?),
                    "upload_meta": parse_stored(&r.get::<_, String>(8)?),
                }))
            },
        )
        .optional()?;
    let Some(mut batch) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT id, input_item_id, persona_id, status, input_snapshot, result_status, transcript, metrics
         FROM runs WHERE batch_id = ?1 ORDER BY position",
    )?;
    let runs = stmt
        .query_map([id], |r| {
            let result = match r.get::<_, Option<String>>(5)? {
                Some(status) => json!({
                    "status": status,
                    "transcript": parse_stored(&r.get::<_, Option<String>>(6)?.unwrap_or_default()),
                    "metrics": parse_stored(&r.get::<_, Option<String>>(7)?.unwrap_or_default()),
                }),
                None => Value::Null,
            };
            Ok(json!({
                "id": r.get::<_, String>(0)?,
                "input_item_id": r.get::<_, Option<String>>(1)?,
                "persona_id": r.get::<_, Option<String>>(2)?,
                "status": r.get::<_, String>(3)?,
                "input_snapshot": parse_stored(&r.get::<_, String>(4)?),
                "result": result,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let project_id = batch["project_id"].as_str().unwrap_or_default().to_owned();
    if let (Value::Object(extra), Some(b)) = (shards::facts(conn, id)?, batch.as_object_mut()) {
        b.extend(extra);
    }
    batch["run_count"] = json!(runs.len());
    batch["runs"] = Value::Array(runs);
    Ok(Some((project_id, batch)))
}

pub(crate) fn run_batch(
    state: &State,
    req: &Request,
    params: &[String],
) -> Result<Response, ApiError> {
    let (conn, principal) = authed(state, req, Need::Read)?;
    let id = params.first().map(String::as_str).unwrap_or_default();
    let not_found = || ApiError::not_found(format!("run batch {id} not found"));
    let (project_id, batch) = load_batch(&conn, id)?.ok_or_else(not_found)?;
    principal
        .check_project(&conn, &project_id)
        .map_err(|_| not_found())?;
    Ok(Response::json(200, &batch))
}
