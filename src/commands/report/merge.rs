//! `report --merge DIR…`: shard result directories (CI artifacts) merged
//! offline into one result directory, with its summary, errors and JUnit,
//! for teams that collect artifacts instead of asking the platform.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::ctx::Ctx;
use crate::error::{code, Error, Result};
use crate::job::display_rel;
use crate::output::{junit, Outcome};
use crate::pulled;
use crate::results::{self, RunInfo, Tally, TraceWriter};

#[derive(Serialize)]
pub(crate) struct Merged {
    pub(crate) scenario: String,
    pub(crate) result_dir: PathBuf,
    pub(crate) merged: usize,
    pub(crate) total: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    /// Runs found in more than one directory, kept once.
    pub(crate) duplicates: usize,
    #[serde(skip)]
    pub(crate) shown_dir: String,
}

/// What a shard's `summary.json` says.
struct Part {
    dir: PathBuf,
    scenario: String,
    bundle: Option<String>,
    runner_type: String,
    iterations: u32,
    started: Option<OffsetDateTime>,
    completed: Option<OffsetDateTime>,
}

fn part(dir: &Path) -> Result<Part> {
    let summary = results::Summary::read(dir)?;
    let path = dir.join(results::SUMMARY);
    let scenario = summary
        .scenario()
        .map(String::from)
        .ok_or_else(|| Error::config(format!("{}: names no scenario", path.display()), None))?;
    if summary.complete == Some(false) {
        return Err(Error::config(
            format!("{}: the run that wrote it did not finish", dir.display()),
            Some("rerun that shard, or leave its directory out".into()),
        ));
    }
    Ok(Part {
        dir: dir.to_path_buf(),
        scenario,
        bundle: summary.bundle_version_id().map(String::from),
        runner_type: summary.runner_type().unwrap_or("process").to_string(),
        iterations: summary.iterations.unwrap_or(1),
        started: summary.started(),
        completed: summary.completed(),
    })
}

pub(crate) fn run(ctx: &Ctx, dirs: &[PathBuf]) -> Result<Outcome> {
    let parts = dirs
        .iter()
        .map(|d| part(&ctx.cwd.join(d)))
        .collect::<Result<Vec<_>>>()?;
    check_one_job(&parts)?;
    let first = &parts[0];
    let root = ctx.workspace_root()?;
    let now = OffsetDateTime::now_utc();
    let dir = results::create_dir(&pulled::results_root(&root), &first.scenario, now)?;
    let mut writer = TraceWriter::create(&dir)?;
    let mut tally = Tally::default();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for p in &parts {
        results::read_trace(&p.dir, |r| {
            if !seen.insert(r.run_id.clone()) {
                duplicates += 1;
                return Ok(());
            }
            writer.append(&r)?;
            tally.add(&r);
            Ok(())
        })?;
    }
    let mut info = RunInfo {
        scenario: &first.scenario,
        runner_type: &first.runner_type,
        bundle_version_id: first.bundle.as_deref(),
        started_at: parts.iter().filter_map(|p| p.started).min().unwrap_or(now),
        completed_at: parts
            .iter()
            .filter_map(|p| p.completed)
            .max()
            .unwrap_or(now),
        iterations: first.iterations,
        parallel: parts.len(),
        interrupted: false,
        complete: false,
        batch_key: None,
        shard: None,
    };
    results::write_errors(&dir, &info)?;
    write_junit(&dir, &info, &tally)?;
    info.complete = true;
    results::write_summary(&dir, &info, &tally)?;
    drop(writer);
    let merged = Merged {
        scenario: first.scenario.clone(),
        shown_dir: display_rel(&root, &dir),
        result_dir: dir,
        merged: parts.len(),
        total: tally.total,
        passed: tally.success,
        failed: tally.failure,
        duplicates,
    };
    Ok(Outcome {
        code: if merged.failed == 0 {
            code::SUCCESS
        } else {
            code::TESTS_FAILED
        },
        report: Box::new(merged),
    })
}

/// Only shards of one job merge: one scenario, one bundle version.
fn check_one_job(parts: &[Part]) -> Result<()> {
    let first = &parts[0];
    for p in &parts[1..] {
        if p.scenario != first.scenario || p.bundle != first.bundle {
            return Err(Error::config(
                format!(
                    "{} is scenario {} of bundle version {}, but {} is {} of {}: only shards of one job merge",
                    first.dir.display(),
                    first.scenario,
                    first.bundle.as_deref().unwrap_or("(none)"),
                    p.dir.display(),
                    p.scenario,
                    p.bundle.as_deref().unwrap_or("(none)")
                ),
                Some("give the result directories of the shards of one `test --shard` job".into()),
            ));
        }
    }
    Ok(())
}

fn write_junit(dir: &Path, info: &RunInfo<'_>, tally: &Tally) -> Result<()> {
    let suite = junit::Suite {
        name: info.scenario,
        tests: tally.total,
        failures: tally.failure,
        time_ms: tally.total_duration_ms,
        timestamp: results::junit_timestamp(info.started_at),
        skipped: Vec::new(),
    };
    junit::write(&dir.join(results::JUNIT), &suite, |each| {
        results::read_trace(dir, each).map(|_| ())
    })
}
