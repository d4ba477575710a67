//! `test`: pull the scenario, run the agent over every input, write local
//! results and reports, upload them, and exit 10 when a run failed
//! (CLI.md §5). The credential's scope is checked before any agent starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::login;
use crate::auth::scope::{self, Need};
use crate::cli::{PullArgs, TestArgs};
use crate::commands::sync::{self, display_rel, UploadReport};
use crate::config::project::limits::Shard;
use crate::config::project::{CommandSpec, RunnerType};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::{github, junit, table, Human, Outcome, Style};
use crate::pulled;
use crate::results::{self, human_ms, RunBrief, RunInfo, Tally, TraceRecord, TraceWriter};
use crate::runner::{self, Agent, Plan};

mod plan;
mod shard;

/// Defaults of CLI.md §5.
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;
/// More workers than this is a typo, not a plan.
const MAX_PARALLEL: u32 = 256;
/// Failed runs annotated under GitHub Actions (it shows at most 10 per step).
const MAX_ANNOTATIONS: usize = 10;
/// Failed runs printed as they happen.
const MAX_FAILURE_LINES: usize = 20;

/// Everything `test` needs, resolved before any network call or run.
struct TestSettings {
    scenario: Option<String>,
    runner_type: &'static str,
    agent: Agent,
    iterations: u32,
    parallel: u32,
    pull: bool,
    upload: bool,
    junit: Option<PathBuf>,
    run: plan::RunSettings,
    shard: Option<Shard>,
}

fn resolve(ctx: &Ctx, args: &TestArgs) -> Result<TestSettings> {
    let config = ctx.config()?;
    let (runner, test) = match config {
        Some(c) => (c.config.runner.clone(), c.config.test.clone()),
        None => Default::default(),
    };
    let base = match config {
        Some(c) => c.dir().to_path_buf(),
        None => ctx.workspace_root()?,
    };
    let cwd = match runner.working_directory.as_deref() {
        Some(d) => base.join(ctx.env.expand_tilde(d)),
        None => base.clone(),
    };
    if !cwd.is_dir() {
        return Err(Error::MissingFile {
            path: cwd,
            what: "runner.working_directory",
        });
    }
    let timeout = match args.timeout.or(test.timeout) {
        Some(t) if t > 0.0 && t.is_finite() && t < 86_400.0 * 7.0 => Duration::from_secs_f64(t),
        Some(t) => {
            return Err(Error::config(
                format!("test.timeout must be a positive number of seconds, not {t}"),
                None,
            ))
        }
        None => Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
    };
    let iterations = args.iterations.or(test.iterations).unwrap_or(1);
    let parallel = args.parallel.or(test.parallel).unwrap_or(1);
    if iterations == 0 || parallel == 0 || parallel > MAX_PARALLEL {
        return Err(Error::config(
            format!("test.iterations must be at least 1 and test.parallel from 1 to {MAX_PARALLEL} (got {iterations} and {parallel})"),
            None,
        ));
    }
    let env: BTreeMap<String, String> = runner.env.clone();
    let missing = || {
        Error::config(
            "no agent to run: set runner.command in fluxloop.yaml, or give it after --",
            Some("e.g. `fluxloop test -- python3 agent.py`, or in fluxloop.yaml: runner: {command: [python3, agent.py]}".into()),
        )
    };
    // The agent's command line: after `--`, else runner.command (a list, or
    // one string for `sh -c`); `type: function` runs the python bootstrap.
    let argv: Option<Vec<String>> = if !args.command.is_empty() {
        Some(args.command.clone())
    } else if runner.kind == Some(RunnerType::Function) {
        None
    } else {
        match runner.command.clone() {
            Some(CommandSpec::Argv(argv)) if argv.first().is_some_and(|p| !p.is_empty()) => {
                Some(argv)
            }
            Some(CommandSpec::Shell(line)) if !line.trim().is_empty() => {
                Some(vec!["sh".into(), "-c".into(), line])
            }
            _ => return Err(missing()),
        }
    };
    let (runner_type, agent) = match argv {
        Some(mut argv) => {
            let program = argv.remove(0);
            (
                "process",
                Agent {
                    program,
                    args: argv,
                    cwd,
                    env,
                    timeout,
                },
            )
        }
        None => {
            let target = runner
                .target
                .clone()
                .filter(|t| t.contains(':'))
                .ok_or_else(|| {
                    Error::config(
                        "runner.type is function but runner.target is not set as module:function",
                        Some("e.g. runner: {type: function, target: \"src.agent:run\"}".into()),
                    )
                })?;
            let python = runner.python.clone().unwrap_or_else(|| "python3".into());
            (
                "function",
                runner::function::agent(&python, &target, cwd, env, timeout),
            )
        }
    };
    let mut agent = agent;
    // `./agent.sh` means relative to the working directory, on every platform.
    if agent.program.contains('/') && Path::new(&agent.program).is_relative() {
        agent.program = agent.cwd.join(&agent.program).display().to_string();
    }
    agent.check_runnable(ctx.env.get_os("PATH"))?;
    Ok(TestSettings {
        scenario: sync::scenario_setting(ctx, args.scenario.as_deref())?,
        runner_type,
        agent,
        iterations,
        parallel,
        pull: !args.skip_pull,
        upload: args.upload.or(test.auto_upload).unwrap_or(true),
        junit: args.junit.as_ref().map(|p| ctx.cwd.join(p)),
        run: plan::RunSettings::resolve(&args.select, &test),
        shard: shard::resolve(ctx, args.select.shard.or(test.shard))?,
    })
}

/// The scenario to run without pulling: the setting, else the only one pulled.
fn pulled_scenario(root: &Path, wanted: Option<&str>) -> Result<String> {
    if let Some(s) = wanted {
        return Ok(s.to_string());
    }
    let dir = root.join(".fluxloop").join("scenarios");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("pulled").join(pulled::INPUTS).is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::config(
            "no scenario pulled yet",
            Some("run `fluxloop sync pull --scenario S` first, or drop --skip-pull".into()),
        )),
        _ => Err(Error::config(
            format!(
                "several scenarios are pulled ({}); which one?",
                found.join(", ")
            ),
            Some("pass --scenario S, or set scenario in fluxloop.yaml".into()),
        )),
    }
}

/// What `test` did.
#[derive(Serialize)]
struct TestReport {
    scenario: String,
    runner_type: &'static str,
    result_dir: PathBuf,
    junit: PathBuf,
    total: usize,
    passed: usize,
    failed: usize,
    /// Passed on a retry (counted in `passed` too).
    flaky: usize,
    /// Not started: `--max-failures` was reached.
    skipped: usize,
    success_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<plan::Threshold>,
    total_duration_ms: u64,
    wall_time_ms: u64,
    slowest: Vec<RunBrief>,
    /// The first failed runs (at most 50); all are in errors.json.
    failures: Vec<RunBrief>,
    upload: Option<UploadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_error: Option<String>,
    #[serde(skip)]
    root: PathBuf,
    /// Rendered for GitHub Actions, where failures are annotations.
    #[serde(skip)]
    github: bool,
}

impl TestReport {
    /// `PASSED support-bot: 10 of 10 runs passed`.
    fn verdict_line(&self, style: &Style) -> String {
        let verdict = if self.passing() {
            style.green("PASSED")
        } else {
            style.red("FAILED")
        };
        format!(
            "{verdict} {}: {} of {} runs passed\n",
            self.scenario, self.passed, self.total
        )
    }
}

impl Human for TestReport {
    fn quiet(&self, style: &Style) -> String {
        self.verdict_line(style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = self.verdict_line(style);
        s.push('\n');
        s.push_str(&table(
            &["RUNS", "PASSED", "FAILED", "SUCCESS RATE", "TIME"],
            &[vec![
                self.total.to_string(),
                self.passed.to_string(),
                self.failed.to_string(),
                format!("{:.1}%", self.success_rate * 100.0),
                human_ms(self.wall_time_ms),
            ]],
        ));
        s.push_str(&plan::extra_counts(self));
        if !self.slowest.is_empty() && self.total > 1 {
            s.push_str("\nSlowest runs:\n");
            for b in &self.slowest {
                s.push_str(&format!("  {:>8}  {}\n", human_ms(b.duration_ms), b.label));
            }
        }
        if self.github && !self.failures.is_empty() {
            // Under GitHub Actions each failure is an annotation and a row of
            // the job summary already; once more here would be noise.
            s.push_str(&format!(
                "\n{} failed: see the annotations and the job summary\n",
                if self.failed == 1 {
                    "1 run".to_string()
                } else {
                    format!("{} runs", self.failed)
                }
            ));
        } else if !self.failures.is_empty() {
            s.push_str("\nFailed runs:\n");
            for b in &self.failures {
                s.push_str(&format!(
                    "  {} {}\n      {}\n",
                    style.red("✗"),
                    b.label,
                    b.error.as_deref().unwrap_or("")
                ));
            }
            if self.failed > self.failures.len() {
                s.push_str(&format!(
                    "  … and {} more (see errors.json)\n",
                    self.failed - self.failures.len()
                ));
            }
        }
        s.push_str(&format!(
            "\nResults: {}\n",
            display_rel(&self.root, &self.result_dir)
        ));
        if let Some(u) = &self.upload {
            s.push_str(&u.human(style));
        }
        if let Some(e) = &self.upload_error {
            s.push_str(&format!("Upload failed: {e}\n"));
        }
        s
    }
}

impl TestReport {
    /// The verdict that sets the exit code (CLI.md §6, `--fail-under`).
    fn passing(&self) -> bool {
        self.skipped == 0 && self.threshold.as_ref().map_or(self.failed == 0, |t| t.met)
    }
}

pub(crate) fn run(ctx: &Ctx, args: TestArgs) -> Result<Outcome> {
    let settings = resolve(ctx, &args)?;
    let root = ctx.workspace_root()?;
    // Forked now, while the process is single-threaded (HTTP below may start
    // resolver threads); it exits when we do.
    let reaper = match runner::reaper::Reaper::start() {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.out.warn(&format!(
                "cannot start the agent reaper ({e}): agents may outlive fluxloop if it is killed with SIGKILL"
            ));
            None
        }
    };

    // Caught until the command ends; each phase decides what a signal does.
    let _caught = crate::signals::Caught::new();
    let pull_phase = sync::pull_watchdog(ctx);
    // Credential and scope first: never find out after a long run.
    // `--list` and `--dry-run` only pull: nothing is uploaded, so no write scope is asked for.
    let preview = args.select.list || args.select.dry_run;
    let session = if settings.pull || (settings.upload && !args.select.list) {
        let session = login::session(ctx)?;
        let mut needs = Vec::new();
        if settings.pull {
            needs.push(Need::Read);
        }
        if settings.upload && !preview {
            needs.push(Need::Write);
        }
        if !needs.is_empty() {
            scope::require(ctx, &session.client, &needs)?;
        }
        Some(session)
    } else {
        None
    };

    let scenario = match (&session, settings.pull) {
        (Some(s), true) => {
            let pull_args = PullArgs {
                scenario: settings.scenario.clone(),
                keep_local: args.keep_local,
                ..PullArgs::default()
            };
            let report = sync::pull(ctx, &s.client, &pull_args)?;
            ctx.out.info(report.human(&ctx.out.err_style).trim_end());
            report.scenario
        }
        _ => pulled_scenario(&root, settings.scenario.as_deref())?,
    };
    // From here the runner stops the agents itself and keeps what finished.
    drop(pull_phase);
    let pulled_dir = pulled::pulled_dir(&root, &scenario);
    let mut inputs = pulled::load_inputs(&pulled_dir)?;
    pulled::attach_personas(&pulled_dir, &mut inputs);
    if inputs.is_empty() {
        return Err(Error::config(
            format!("no inputs with text in {}", pulled_dir.join(pulled::INPUTS).display()),
            Some("add inputs to the scenario's bundle on the platform, then `fluxloop sync pull --yes`".into()),
        ));
    }
    let selection = plan::choose(
        &root,
        &scenario,
        &inputs,
        settings.iterations,
        &args.select,
        settings.shard,
    )?;
    if let (plan::Selection::EmptyShard { shard, runs }, Some(s), true, false) =
        (&selection, &session, settings.upload, preview)
    {
        return shard::report_empty(
            ctx,
            s,
            &root,
            &scenario,
            args.select.batch_key.as_deref(),
            (*shard, *runs),
        );
    }
    if let Some(outcome) = plan::preview_outcome(
        &args,
        &settings,
        &root,
        &scenario,
        &inputs,
        &selection,
        session.as_ref(),
    ) {
        return Ok(outcome);
    }
    let meta = pulled::read_meta(&pulled_dir)?;
    let bundle_version_id = meta.as_ref().and_then(pulled::bundle_version_id);
    if settings.upload && bundle_version_id.is_none() {
        return Err(Error::config(
            format!(
                "{} records no bundle version, so results cannot be uploaded",
                pulled_dir.join(pulled::SYNC_META).display()
            ),
            Some("run `fluxloop sync pull --yes`, or pass --skip-upload".into()),
        ));
    }

    let batch_key = crate::ci::fanout::batch_key(
        &ctx.env,
        args.select.batch_key.as_deref(),
        &scenario,
        settings.shard.is_some(),
    )?;
    let started_at = OffsetDateTime::now_utc();
    let result_dir = results::create_dir(&pulled::results_root(&root), &scenario, started_at)?;
    let plan = Plan {
        agent: settings.agent.clone(),
        scenario: scenario.clone(),
        inputs: &inputs,
        iterations: settings.iterations,
        parallel: settings.parallel as usize,
        reaper: reaper.as_ref(),
        slots: selection.slots(),
        retries: settings.run.retries,
        max_failures: settings.run.max_failures,
        start_interval: settings.run.start_interval(),
    };
    let total = plan.total();
    ctx.out.info(&format!(
        "Running {total} run{} ({}, {} at a time, timeout {}) with `{}`",
        if total == 1 { "" } else { "s" },
        plan::shape(
            inputs.len(),
            settings.iterations,
            selection.slots().is_some(),
            settings.shard
        ),
        settings.parallel.min(total as u32),
        human_ms(settings.agent.timeout.as_millis() as u64),
        settings.agent.display()
    ));

    let mut writer = TraceWriter::create(&result_dir)?;
    // A first summary, marked incomplete, while the lock is held: it records
    // the bundle, so the runs of a killed `test` can still be uploaded.
    let mut info = RunInfo {
        scenario: &scenario,
        runner_type: settings.runner_type,
        bundle_version_id: bundle_version_id.as_deref(),
        started_at,
        completed_at: started_at,
        iterations: settings.iterations,
        parallel: settings.parallel as usize,
        interrupted: false,
        complete: false,
        batch_key: batch_key.as_deref(),
        shard: settings.shard,
    };
    results::write_summary(&result_dir, &info, &Tally::default())?;
    let mut tally = Tally::default();
    let clock = Instant::now();
    let mut last_line = Instant::now();
    let tty = ctx.out.stderr_tty && !ctx.out.quiet;
    let mut failure_lines = 0usize;
    let outcome = runner::run(&plan, &mut |finished| {
        let record = TraceRecord::new(&finished, &inputs[finished.input]);
        writer.append(&record)?;
        tally.add(&record);
        if !record.success && failure_lines < MAX_FAILURE_LINES {
            failure_lines += 1;
            if tty {
                ctx.out.progress_done();
            }
            ctx.out.info(&format!(
                "{} {}: {}",
                ctx.out.err_style.red("FAIL"),
                record.label(),
                record.error_message().unwrap_or("")
            ));
            if failure_lines == MAX_FAILURE_LINES {
                ctx.out
                    .info("(further failures are not shown here; see errors.json)");
            }
        }
        let line = format!(
            "[{}/{total}] {} passed, {} failed, {:.0}s",
            tally.total,
            tally.success,
            tally.failure,
            clock.elapsed().as_secs_f64()
        );
        if tty {
            ctx.out.progress(&line);
        } else if last_line.elapsed() >= Duration::from_secs(10) && tally.total < total {
            ctx.out.info(&line);
            last_line = Instant::now();
        }
        Ok(())
    });
    // No agent is left running: let the reaper go.
    drop(reaper);
    if tty {
        ctx.out.progress_done();
    }
    let interrupted = matches!(outcome, Err(Error::Interrupted));
    let unrun = outcome.as_ref().cloned().unwrap_or_default();
    tally.skipped = unrun.len();
    let completed_at = OffsetDateTime::now_utc();
    info.completed_at = completed_at;
    info.interrupted = interrupted;
    // Reports are written even when the run stopped early: what finished counts.
    results::write_errors(&result_dir, &info)?;
    let junit_path = settings
        .junit
        .clone()
        .unwrap_or_else(|| result_dir.join(results::JUNIT));
    if let Some(parent) = junit_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let suite = junit::Suite {
        name: &scenario,
        tests: tally.total,
        failures: tally.failure,
        time_ms: tally.total_duration_ms,
        timestamp: results::junit_timestamp(started_at),
        skipped: plan::skipped_labels(&inputs, &unrun),
    };
    junit::write(&junit_path, &suite, |each| {
        results::read_trace(&result_dir, each).map(|_| ())
    })?;
    // Last: the mark that the directory is whole, then the lock goes.
    info.complete = true;
    results::write_summary(&result_dir, &info, &tally)?;
    drop(writer);
    if let Err(e) = outcome {
        if interrupted {
            ctx.out.warn(&format!(
                "stopped after {} of {total} runs; finished runs are in {}; upload them with `fluxloop sync upload --result-dir {}`",
                tally.total,
                display_rel(&root, &result_dir),
                display_rel(&ctx.cwd, &result_dir)
            ));
        }
        return Err(e);
    }

    let wall_time_ms = (completed_at - started_at).whole_milliseconds().max(0) as u64;
    let mut report = TestReport {
        scenario: scenario.clone(),
        runner_type: settings.runner_type,
        result_dir: result_dir.clone(),
        junit: junit_path,
        total: tally.total,
        passed: tally.success,
        failed: tally.failure,
        flaky: tally.flaky,
        skipped: tally.skipped,
        success_rate: tally.success_rate(),
        threshold: None,
        total_duration_ms: tally.total_duration_ms,
        wall_time_ms,
        slowest: tally.slowest.clone(),
        failures: tally.failed.iter().take(20).cloned().collect(),
        upload: None,
        upload_error: None,
        root: root.clone(),
        github: ctx.out.github && !ctx.globals.json,
    };
    report.threshold = plan::verdict(&tally, &settings.run).1;
    github_annotations(ctx, &tally);

    let mut upload_failure = None;
    if let (Some(session), true) = (&session, settings.upload) {
        let _stop = sync::upload_watchdog(ctx, &result_dir);
        // The runs may have outlived the login's access token. A refresh
        // that fails here fails the upload below, which keeps the results
        // and says how to upload them later.
        let _ = session.client.refresh_ahead();
        ctx.out.info(&format!("Uploading {} runs", tally.total));
        match sync::upload_dir(ctx, session, &result_dir, Some(&scenario), 0) {
            Ok(u) => report.upload = Some(u),
            Err(e) => {
                report.upload_error = Some(e.to_string());
                upload_failure = Some(e);
            }
        }
    }
    github_summary(ctx, &report);

    if let Some(e) = upload_failure {
        // The results are safe on disk; say how to send them later.
        if !ctx.out.json {
            ctx.out.error(&e);
        }
        ctx.out.warn(&format!(
            "the results are kept in {}; upload them later with `fluxloop sync upload --result-dir {}`",
            display_rel(&root, &result_dir),
            display_rel(&ctx.cwd, &result_dir)
        ));
        let code = e.exit_code();
        return Ok(Outcome {
            report: Box::new(report),
            code,
        });
    }
    let (code, _) = plan::verdict(&tally, &settings.run);
    Ok(Outcome {
        report: Box::new(report),
        code,
    })
}

/// One `::error::` per failed run (capped), and the details in a group.
fn github_annotations(ctx: &Ctx, tally: &Tally) {
    if !ctx.out.github || tally.failed.is_empty() {
        return;
    }
    for b in tally.failed.iter().take(MAX_ANNOTATIONS) {
        let message = format!("{}: {}", b.label, b.error.as_deref().unwrap_or("failed"));
        ctx.out
            .workflow_command(&github::error_annotation("fluxloop run failed", &message));
    }
    if tally.failure > MAX_ANNOTATIONS {
        ctx.out.workflow_command(&format!(
            "::warning::{}",
            github::escape_data(&format!(
                "{} more failed runs are not annotated; see errors.json and junit.xml",
                tally.failure - MAX_ANNOTATIONS
            ))
        ));
    }
    // The details are in the job summary; repeating them in a log group
    // would show every failure once more.
}

/// The Markdown job summary and the step outputs.
fn github_summary(ctx: &Ctx, r: &TestReport) {
    if !ctx.out.github {
        return;
    }
    if let Some(path) = ctx.env.path("GITHUB_STEP_SUMMARY") {
        let mut md = format!(
            "### {} FluxLoop: {}\n\n| Runs | Passed | Failed | Success rate | Time |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {:.1}% | {} |\n",
            if r.passing() { "✅" } else { "❌" },
            github::md_cell(&r.scenario),
            r.total,
            r.passed,
            r.failed,
            r.success_rate * 100.0,
            human_ms(r.wall_time_ms)
        );
        md.push_str(&plan::github_extra(r));
        if !r.failures.is_empty() {
            md.push_str("\n**Failed runs**\n\n| Input | Error |\n|---|---|\n");
            for b in &r.failures {
                md.push_str(&format!(
                    "| {} | {} |\n",
                    github::md_cell(&b.label),
                    github::md_cell(&results::excerpt(b.error.as_deref().unwrap_or(""), 300))
                ));
            }
            if r.failed > r.failures.len() {
                md.push_str(&format!(
                    "\n… and {} more in `errors.json`.\n",
                    r.failed - r.failures.len()
                ));
            }
        }
        if let Some(u) = &r.upload {
            md.push_str(&format!(
                "\nUploaded as run batch {}",
                github::md_cell(&u.run_batch_id)
            ));
            match github::md_url(&u.url) {
                Some(url) => md.push_str(&format!(": [view the results]({url})\n")),
                None => md.push('\n'),
            }
        } else if let Some(e) = &r.upload_error {
            md.push_str(&format!("\n⚠️ Upload failed: {}\n", github::md_cell(e)));
        }
        md.push('\n');
        if let Err(e) = github::append(&path, &md) {
            ctx.out.warn(&format!(
                "cannot write GITHUB_STEP_SUMMARY {}: {e}",
                path.display()
            ));
        }
    }
    if let Some(path) = ctx.env.path("GITHUB_OUTPUT") {
        let text = github::outputs(&[
            ("total", r.total.to_string()),
            ("failed", r.failed.to_string()),
            ("passed", r.passed.to_string()),
            ("flaky", r.flaky.to_string()),
            ("skipped", r.skipped.to_string()),
        ]);
        if let Err(e) = github::append(&path, &text) {
            ctx.out.warn(&format!(
                "cannot write GITHUB_OUTPUT {}: {e}",
                path.display()
            ));
        }
    }
}
