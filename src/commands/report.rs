//! `report`: the fan-in of a sharded job (issue 17). Finds the run batch
//! the shards uploaded to, waits (bounded) until every shard reported,
//! and gives one summary, one JUnit file and one exit code for the lot.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::api::batches::{self, BatchRef, RunBatch};
use crate::api::Client;
use crate::auth::login;
use crate::auth::scope::{self, Need};
use crate::ci::fanout;
use crate::cli::ReportArgs;
use crate::commands::sync;
use crate::ctx::Ctx;
use crate::error::{code, Error, Result};
use crate::output::{junit, Outcome};
use crate::results::{TraceError, TraceRecord};

pub(crate) mod merge;

/// Between two looks at the batch while waiting.
const POLL: Duration = Duration::from_secs(1);
/// Failed runs listed in the summary.
const MAX_FAILURES: usize = 20;

/// What `report` found: the batch and its verdict.
#[derive(Serialize)]
pub(crate) struct Report {
    pub(crate) run_batch_id: String,
    pub(crate) batch_key: Option<String>,
    pub(crate) status: String,
    pub(crate) shards: Option<Value>,
    pub(crate) total: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) failures: Vec<String>,
    pub(crate) junit: PathBuf,
}

pub(crate) fn run(ctx: &Ctx, args: ReportArgs) -> Result<Outcome> {
    if !args.merge.is_empty() {
        return merge::run(ctx, &args.merge);
    }
    let session = login::session(ctx)?;
    scope::require(ctx, &session.client, &[Need::Read])?;
    let (which, label) = batch_path(ctx, &args)?;
    let batch = wait_for(ctx, &session.client, (&which, &label), args.wait)?;
    let junit_path = ctx
        .cwd
        .join(args.junit.clone().unwrap_or_else(|| "junit.xml".into()));
    let records = records(&batch);
    let failed: Vec<&TraceRecord> = records.iter().filter(|r| !r.success).collect();
    write_junit(&junit_path, &batch, &records)?;
    let report = Report {
        run_batch_id: batch.id.clone().unwrap_or_default(),
        batch_key: batch.batch_key.clone(),
        status: batch.status.clone().unwrap_or_default(),
        shards: batch.shards.clone(),
        total: records.len(),
        passed: records.len() - failed.len(),
        failed: failed.len(),
        failures: failed
            .iter()
            .take(MAX_FAILURES)
            .map(|r| match &r.error {
                Some(e) if !e.message.is_empty() => format!("{}: {}", r.label(), e.message),
                _ => r.label(),
            })
            .collect(),
        junit: junit_path,
    };
    crate::output::report::step_summary(
        &ctx.out,
        crate::ci::github_files(&ctx.env).as_ref(),
        &report,
    );
    let code = if report.failed == 0 {
        code::SUCCESS
    } else {
        code::TESTS_FAILED
    };
    Ok(Outcome {
        report: Box::new(report),
        code,
    })
}

/// The batch (by id, else by the key `test --shard` used), and how
/// messages name it.
fn batch_path(ctx: &Ctx, args: &ReportArgs) -> Result<(BatchRef, String)> {
    if let Some(id) = &args.run_batch {
        return Ok((BatchRef::Id(id.clone()), format!("run batch {id}")));
    }
    let scenario = sync::scenario_setting(ctx)?.ok_or_else(|| {
        Error::config(
            "report: which scenario? the batch key includes it",
            Some("pass --scenario S (or set scenario in fluxloop.yaml), or --run-batch ID".into()),
        )
    })?;
    let given = ctx.settings.raw("batch_key")?.map(|v| v.val);
    let key = fanout::batch_key(&ctx.env, given.as_deref(), &scenario, true)?.ok_or_else(|| {
        Error::config(
            "report: no batch key: not in a CI that names its build, and no --batch-key",
            Some("pass --batch-key K (what the shards were given), or --run-batch ID".into()),
        )
    })?;
    let label = format!("run batch with key {key}");
    Ok((BatchRef::Key(key), label))
}

/// The batch once every shard reported; with `wait`, polled until then
/// (a batch no shard has created yet counts as nothing reported).
fn wait_for(
    ctx: &Ctx,
    client: &Client,
    (which, label): (&BatchRef, &str),
    wait: Option<f64>,
) -> Result<RunBatch> {
    let deadline = Instant::now() + Duration::from_secs_f64(wait.unwrap_or(0.0));
    let mut last_line = String::new();
    loop {
        let found = match batches::run_batch(client, which) {
            Ok(b) => Some(b),
            Err(e) if e.exit_code() == code::NOT_FOUND && wait.is_some() => None,
            Err(e) => return Err(e),
        };
        let (reported, total) = match &found {
            Some(b) => match b.shard_progress() {
                Some(progress) => progress,
                // Not sharded: complete as uploaded.
                None => return Ok(found.unwrap_or_default()),
            },
            None => (0, 0),
        };
        if let Some(b) = found.filter(|_| total > 0 && reported >= total) {
            return Ok(b);
        }
        if wait.is_none() || Instant::now() >= deadline {
            // Read as "… not found".
            let what = if total == 0 {
                label.to_string()
            } else {
                format!("{label}: {} of {total} shard reports", total - reported)
            };
            return Err(Error::NotFound {
                what,
                hint: Some(match wait {
                    None => "pass --wait [SECS] to wait for the other shards".into(),
                    Some(_) => "a shard may have failed before uploading: rerun it, or wait longer with --wait SECS".into(),
                }),
            });
        }
        let line = if total == 0 {
            "Waiting for the first shard to report".to_string()
        } else {
            format!("Waiting for shards: {reported} of {total} reported")
        };
        if line != last_line {
            ctx.out.info(&line);
            last_line = line;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The batch's runs as trace records, for the counts and JUnit.
fn records(batch: &RunBatch) -> Vec<TraceRecord> {
    batch
        .runs
        .iter()
        .map(|r| {
            let status = r.result.status.as_deref().or(r.status.as_deref());
            let output = r
                .result
                .transcript
                .iter()
                .rev()
                .find(|m| m.role.as_deref() == Some("assistant"))
                .and_then(|m| m.content.clone())
                .unwrap_or_default();
            let success = status == Some("completed");
            TraceRecord {
                run_id: r.id.clone().unwrap_or_default(),
                input: r
                    .input_snapshot
                    .messages
                    .first()
                    .and_then(|m| m.content.clone())
                    .unwrap_or_default(),
                input_item_id: r.input_item_id.clone(),
                error: (!success).then(|| TraceError {
                    message: output.clone(),
                    stderr: None,
                }),
                output,
                success,
                duration_ms: r.result.metrics.duration_ms.unwrap_or(0),
                ..TraceRecord::default()
            }
        })
        .collect()
}

fn write_junit(path: &std::path::Path, batch: &RunBatch, records: &[TraceRecord]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let name = batch
        .batch_key
        .as_deref()
        .or(batch.id.as_deref())
        .unwrap_or("fluxloop");
    let created = batch.created_at.as_deref().unwrap_or_default();
    let suite = junit::Suite {
        name,
        tests: records.len(),
        failures: records.iter().filter(|r| !r.success).count(),
        time_ms: records.iter().map(|r| r.duration_ms).sum(),
        // RFC 3339 without the zone, as the JUnit schema wants.
        timestamp: created.get(..19).unwrap_or_default().to_string(),
        skipped: Vec::new(),
    };
    junit::write(path, &suite, |each| {
        for r in records {
            each(r.clone())?;
        }
        Ok(())
    })
}
