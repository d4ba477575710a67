//! The issue-18 parts of `test`: retries, thresholds, run selection,
//! pacing, and the `--list` / `--dry-run` reports that run nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::auth::login::Session;
use crate::cli::RunFlags;
use crate::cli::TestArgs;
use crate::config::project::limits::{self, Shard};
use crate::config::settings::Settings;
use crate::error::{code, Result};
use crate::job::display_rel;
use crate::output::Outcome;
use crate::pulled::{self, Input};
use crate::results::Tally;
use crate::runner::select::{self, Filters};
use crate::runner::{Agent, Slot};

use super::TestSettings;
use crate::job::report::Threshold;

/// How runs are retried, paced and judged: the flag, else `test:` in
/// fluxloop.yaml (both checked by `config::project::limits`).
#[derive(Clone, Debug, Default)]
pub(super) struct RunSettings {
    pub(super) retries: u32,
    pub(super) pass_rate: Option<f64>,
    pub(super) max_failures: Option<usize>,
    pub(super) rate: Option<crate::config::project::limits::Rate>,
}

impl RunSettings {
    /// `test.retries`, `test.pass_rate`, `test.max_failures`, `test.rate`
    /// from the registry (flag, else fluxloop.yaml).
    pub(super) fn resolve(settings: &Settings) -> Result<RunSettings> {
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| "is not a whole number".to_string())
        };
        Ok(RunSettings {
            retries: settings
                .parsed(
                    "test.retries",
                    |v| number(v).and_then(limits::run_retries),
                    "fix {name}",
                )?
                .map_or(0, |v| v.val),
            pass_rate: settings
                .parsed(
                    "test.pass_rate",
                    |v| {
                        v.parse::<f64>()
                            .map_err(|_| "is not a number".to_string())
                            .and_then(limits::pass_rate)
                    },
                    "fix {name}",
                )?
                .map(|v| v.val),
            max_failures: settings
                .parsed(
                    "test.max_failures",
                    |v| number(v).and_then(limits::max_failures),
                    "fix {name}",
                )?
                .map(|v| v.val),
            rate: settings
                .parsed("test.rate", limits::rate, "fix {name}")?
                .map(|v| v.val),
        })
    }

    pub(super) fn start_interval(&self) -> Option<Duration> {
        self.rate.as_ref().map(|r| r.interval)
    }
}

/// The runs to execute.
pub(super) enum Selection {
    /// Every input × iteration.
    All,
    Chosen(Vec<Slot>),
    /// `--last-failed`, and nothing failed in this result directory.
    NothingFailed(PathBuf),
    /// This shard's part of the `runs` selected is empty.
    EmptyShard {
        shard: Shard,
        runs: usize,
    },
}

impl Selection {
    pub(super) fn slots(&self) -> Option<&[Slot]> {
        match self {
            Selection::Chosen(s) => Some(s),
            _ => None,
        }
    }
}

pub(super) fn choose(
    root: &Path,
    scenario: &str,
    inputs: &[Input],
    iterations: u32,
    flags: &RunFlags,
    shard: Option<Shard>,
) -> Result<Selection> {
    let failed = if flags.last_failed {
        let (dir, failed) = select::last_failed(&pulled::results_root(root), scenario)?;
        if failed.is_empty() {
            return Ok(Selection::NothingFailed(dir));
        }
        Some(failed)
    } else {
        None
    };
    let filters = Filters {
        inputs: &flags.inputs,
        persona: flags.persona.as_deref(),
        grep: flags.grep.as_deref(),
        failed: failed.as_ref(),
    };
    let pulled_dir = pulled::pulled_dir(root, scenario);
    let chosen = match select::choose(&pulled_dir, inputs, iterations, &filters)? {
        Some(slots) => Selection::Chosen(slots),
        None => Selection::All,
    };
    // A shard is one more filter, applied last, so that every shard of a
    // job splits the same selection.
    let Some(shard) = shard else {
        return Ok(chosen);
    };
    let runs = all_slots(inputs, iterations, &chosen);
    let total = runs.len();
    let mine = select::shard(runs, shard);
    Ok(if mine.is_empty() {
        Selection::EmptyShard { shard, runs: total }
    } else {
        Selection::Chosen(mine)
    })
}

/// Every slot of the plan, in run order.
pub(super) fn all_slots(inputs: &[Input], iterations: u32, sel: &Selection) -> Vec<Slot> {
    match sel.slots() {
        Some(s) => s.to_vec(),
        None => (0..iterations)
            .flat_map(|iteration| (0..inputs.len()).map(move |input| Slot { iteration, input }))
            .collect(),
    }
}

/// One run as `--list` prints it.
#[derive(Serialize)]
pub(crate) struct ListedRun {
    pub(crate) input_item_id: Option<String>,
    pub(crate) iteration: u32,
    pub(crate) input: String,
}

fn listed(inputs: &[Input], slots: &[Slot]) -> Vec<ListedRun> {
    slots
        .iter()
        .map(|s| ListedRun {
            input_item_id: inputs[s.input].id.clone(),
            iteration: s.iteration,
            input: inputs[s.input].text.clone(),
        })
        .collect()
}

/// `--list`: the runs that would execute, one per line (input id,
/// iteration, start of the text, tab-separated for `cut`).
#[derive(Serialize)]
pub(crate) struct ListReport {
    pub(crate) scenario: String,
    pub(crate) runs: Vec<ListedRun>,
}

impl ListReport {
    pub(super) fn new(scenario: &str, inputs: &[Input], slots: &[Slot]) -> ListReport {
        ListReport {
            scenario: scenario.to_string(),
            runs: listed(inputs, slots),
        }
    }
}

/// `--dry-run`: everything `test` would do, nothing done.
#[derive(Serialize)]
pub(crate) struct DryRunReport {
    pub(crate) scenario: String,
    pub(crate) runs: Vec<ListedRun>,
    pub(crate) parallel: u32,
    pub(crate) retries: u32,
    pub(crate) rate: Option<String>,
    pub(crate) max_failures: Option<usize>,
    pub(crate) pass_rate: Option<f64>,
    pub(crate) command: String,
    pub(crate) timeout_ms: u64,
    pub(crate) result_dir: String,
    pub(crate) upload: Option<UploadTarget>,
}

/// Where results would go, and with which credential (masked).
#[derive(Serialize)]
pub(crate) struct UploadTarget {
    pub(crate) endpoint: String,
    pub(crate) endpoint_origin: String,
    pub(crate) credential: String,
    pub(crate) credential_origin: String,
}

/// The facts a dry run states.
pub(super) struct DryRun<'a> {
    pub(super) root: &'a Path,
    pub(super) scenario: &'a str,
    pub(super) inputs: &'a [Input],
    pub(super) slots: &'a [Slot],
    pub(super) parallel: u32,
    pub(super) run: &'a RunSettings,
    pub(super) agent: &'a Agent,
    pub(super) session: Option<&'a Session>,
}

impl DryRunReport {
    pub(super) fn new(d: DryRun<'_>) -> DryRunReport {
        let dir = pulled::results_root(d.root)
            .join(format!("{}-YYYYmmdd-HHMMSS", pulled::dir_name(d.scenario)));
        DryRunReport {
            scenario: d.scenario.to_string(),
            runs: listed(d.inputs, d.slots),
            parallel: d.parallel.min(d.slots.len().max(1) as u32),
            retries: d.run.retries,
            rate: d.run.rate.as_ref().map(|r| r.text.clone()),
            max_failures: d.run.max_failures,
            pass_rate: d.run.pass_rate,
            command: d.agent.display(),
            timeout_ms: d.agent.timeout.as_millis() as u64,
            result_dir: format!("{}/", display_rel(d.root, &dir)),
            upload: d.session.map(|s| UploadTarget {
                endpoint: s.endpoint.val.clone(),
                endpoint_origin: s.endpoint.origin.to_string(),
                credential: s.resolved.credential.val.secret.masked(),
                credential_origin: s.resolved.credential.origin.to_string(),
            }),
        }
    }
}

/// `--last-failed` when every run passed last time.
#[derive(Serialize)]
pub(crate) struct NothingToRerun {
    pub(crate) scenario: String,
    pub(crate) result_dir: String,
    pub(crate) runs: Vec<ListedRun>,
}

impl NothingToRerun {
    pub(super) fn new(scenario: &str, dir: String) -> NothingToRerun {
        NothingToRerun {
            scenario: scenario.to_string(),
            result_dir: dir,
            runs: Vec::new(),
        }
    }
}

/// The exit code of finished runs: 10 when a run failed, unless the
/// success rate is at or above `--fail-under`; always 10 when runs were
/// skipped by `--max-failures`.
pub(super) fn verdict(tally: &Tally, run: &RunSettings) -> (u8, Option<Threshold>) {
    let threshold = run.pass_rate.map(|pass_rate| Threshold {
        pass_rate,
        met: tally.skipped == 0 && tally.success_rate() >= pass_rate,
    });
    let ok = if tally.skipped > 0 {
        false
    } else {
        match &threshold {
            Some(t) => t.met,
            None => tally.failure == 0,
        }
    };
    (
        if ok {
            code::SUCCESS
        } else {
            code::TESTS_FAILED
        },
        threshold,
    )
}

/// `10 inputs × 2 iterations`, or `chosen from …` when runs were selected,
/// or `shard 2/4 of …`.
pub(super) fn shape(inputs: usize, iterations: u32, chosen: bool, shard: Option<Shard>) -> String {
    let plural = |n: usize, what: &str| {
        if n == 1 {
            format!("1 {what}")
        } else {
            format!("{n} {what}s")
        }
    };
    let all = format!(
        "{} × {}",
        plural(inputs, "input"),
        plural(iterations as usize, "iteration")
    );
    match shard {
        Some(s) => format!("shard {s} of {all}"),
        None if chosen => format!("chosen from {all}"),
        None => all,
    }
}

/// `--list`, `--dry-run` and a `--last-failed` with nothing to rerun end
/// here, before any run.
pub(super) fn preview_outcome(
    args: &TestArgs,
    settings: &TestSettings,
    root: &Path,
    scenario: &str,
    inputs: &[crate::pulled::Input],
    selection: &Selection,
    session: Option<&Session>,
) -> Option<Outcome> {
    if let Selection::NothingFailed(dir) = selection {
        return Some(Outcome::ok(NothingToRerun::new(
            scenario,
            display_rel(root, dir),
        )));
    }
    if let Selection::EmptyShard { shard, runs } = selection {
        return Some(Outcome::ok(super::shard::EmptyShard::new(
            scenario, *shard, *runs,
        )));
    }
    let slots = all_slots(inputs, settings.iterations, selection);
    if args.select.dry_run {
        return Some(Outcome::ok(DryRunReport::new(DryRun {
            root,
            scenario,
            inputs,
            slots: &slots,
            parallel: settings.parallel,
            run: &settings.run,
            agent: &settings.agent,
            session: session.filter(|_| settings.upload),
        })));
    }
    if args.select.list {
        return Some(Outcome::ok(ListReport::new(scenario, inputs, &slots)));
    }
    None
}
