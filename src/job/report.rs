//! The report stage: what the runs left becomes `errors.json`, JUnit XML
//! and the final `summary.json` (the mark that the directory is whole),
//! and the [`TestReport`] `output/` renders.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::job::run::RunReport;
use crate::job::upload::UploadReport;
use crate::output::junit;
use crate::pulled::Input;
use crate::results::{self, RunBrief, RunInfo, Tally};
use crate::runner::Slot;

/// Failed runs a [`TestReport`] lists (all are in errors.json).
const REPORTED_FAILURES: usize = 20;

/// The pass-rate verdict of `--fail-under`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Threshold {
    pub(crate) pass_rate: f64,
    pub(crate) met: bool,
}

/// What `test` did.
#[derive(Serialize)]
pub(crate) struct TestReport {
    pub(crate) scenario: String,
    pub(crate) runner_type: &'static str,
    pub(crate) result_dir: PathBuf,
    pub(crate) junit: PathBuf,
    pub(crate) total: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    /// Passed on a retry (counted in `passed` too).
    pub(crate) flaky: usize,
    /// Not started: `--max-failures` was reached.
    pub(crate) skipped: usize,
    pub(crate) success_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) threshold: Option<Threshold>,
    pub(crate) total_duration_ms: u64,
    pub(crate) wall_time_ms: u64,
    pub(crate) slowest: Vec<RunBrief>,
    /// The first failed runs (at most 50); all are in errors.json.
    pub(crate) failures: Vec<RunBrief>,
    pub(crate) upload: Option<UploadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upload_error: Option<String>,
    /// The workspace root, which paths are shown relative to.
    #[serde(skip)]
    pub(crate) root: PathBuf,
    /// Rendered for GitHub Actions, where failures are annotations.
    #[serde(skip)]
    pub(crate) github: bool,
}

impl TestReport {
    /// The verdict that sets the exit code (CLI.md §6, `--fail-under`).
    pub(crate) fn passing(&self) -> bool {
        self.skipped == 0 && self.threshold.as_ref().map_or(self.failed == 0, |t| t.met)
    }
}

/// What the report stage needs beside the run stage's report.
pub(crate) struct ReportInput<'a> {
    pub(crate) result_dir: &'a Path,
    /// Where JUnit XML goes: `--junit`, else the result directory's.
    pub(crate) junit: PathBuf,
    pub(crate) inputs: &'a [Input],
}

/// The files of a finished (or stopped) run, and how it ended.
pub(crate) struct Reported {
    pub(crate) junit: PathBuf,
    pub(crate) completed_at: OffsetDateTime,
    pub(crate) tally: Tally,
    /// Why the run ended early, when it did (see [`RunReport::stopped`]).
    pub(crate) stopped: Option<Error>,
}

/// Writes the reports of `run`, even when it stopped early: what finished
/// counts. The lock on the directory goes last.
pub(crate) fn report(
    input: &ReportInput<'_>,
    info: &mut RunInfo<'_>,
    run: RunReport,
) -> Result<Reported> {
    let completed_at = OffsetDateTime::now_utc();
    info.completed_at = completed_at;
    info.interrupted = run.interrupted();
    results::write_errors(input.result_dir, info)?;
    if let Some(parent) = input.junit.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let suite = junit::Suite {
        name: info.scenario,
        tests: run.tally.total,
        failures: run.tally.failure,
        time_ms: run.tally.total_duration_ms,
        timestamp: results::junit_timestamp(info.started_at),
        skipped: skipped_labels(input.inputs, &run.unrun),
    };
    junit::write(&input.junit, &suite, |each| {
        results::read_trace(input.result_dir, each).map(|_| ())
    })?;
    info.complete = true;
    results::write_summary(input.result_dir, info, &run.tally)?;
    drop(run.writer);
    Ok(Reported {
        junit: input.junit.clone(),
        completed_at,
        tally: run.tally,
        stopped: run.stopped,
    })
}

/// The labels of runs never started, for JUnit.
fn skipped_labels(inputs: &[Input], unrun: &[Slot]) -> Vec<String> {
    unrun
        .iter()
        .map(|s| {
            let i = &inputs[s.input];
            results::label(&i.text, i.id.as_deref(), s.iteration)
        })
        .collect()
}

/// The facts of a [`TestReport`] that are not in the tally.
pub(crate) struct TestFacts {
    pub(crate) scenario: String,
    pub(crate) runner_type: &'static str,
    pub(crate) result_dir: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) started_at: OffsetDateTime,
    pub(crate) threshold: Option<Threshold>,
    pub(crate) github: bool,
}

impl TestReport {
    /// The report of finished runs, before any upload.
    pub(crate) fn new(facts: TestFacts, reported: &Reported) -> TestReport {
        let tally = &reported.tally;
        let wall_time_ms = (reported.completed_at - facts.started_at)
            .whole_milliseconds()
            .max(0) as u64;
        TestReport {
            scenario: facts.scenario,
            runner_type: facts.runner_type,
            result_dir: facts.result_dir,
            junit: reported.junit.clone(),
            total: tally.total,
            passed: tally.success,
            failed: tally.failure,
            flaky: tally.flaky,
            skipped: tally.skipped,
            success_rate: tally.success_rate(),
            threshold: facts.threshold,
            total_duration_ms: tally.total_duration_ms,
            wall_time_ms,
            slowest: tally.slowest.clone(),
            failures: tally
                .failed
                .iter()
                .take(REPORTED_FAILURES)
                .cloned()
                .collect(),
            upload: None,
            upload_error: None,
            root: facts.root,
            github: facts.github,
        }
    }
}
