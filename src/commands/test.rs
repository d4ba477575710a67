//! `test`: pull the scenario, run the agent over every input, write local
//! results and reports, upload them, and exit 10 when a run failed
//! (CLI.md §5). The credential's scope is checked before any agent starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::auth::login::{self, Session};
use crate::auth::scope::{self, Need};
use crate::ci::{self, GithubFiles};
use crate::cli::TestArgs;
use crate::commands::sync;
use crate::config::project::limits::Shard;
use crate::config::project::{CommandSpec, RunnerConfig, RunnerType};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::job;
use crate::job::report::{ReportInput, Reported, TestFacts, TestReport};
use crate::job::run::RunProgress;
use crate::job::stream::{Stream, StreamFacts};
use crate::job::upload::{UploadInput, UploadProgress};
use crate::output::test::RunLines;
use crate::output::{self, Human, Outcome};
use crate::pulled::{self, Input};
use crate::results::{self, RunInfo, Tally, TraceRecord};
use crate::runner::reaper::Reaper;
use crate::runner::{self, Agent, Plan};

pub(crate) mod plan;
pub(crate) mod shard;

/// Defaults of CLI.md §5.
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;
/// More workers than this is a typo, not a plan.
const MAX_PARALLEL: u32 = 256;

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
    let runner = config.map(|c| c.config.runner.clone()).unwrap_or_default();
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
    let s = &ctx.settings;
    let number = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| "is not a whole number".to_string())
    };
    let timeout = timeout(
        s.parsed(
            "test.timeout",
            |v| v.parse::<f64>().map_err(|_| "is not a number".to_string()),
            "fix {name}",
        )?
        .map(|v| v.val),
    )?;
    let iterations = s
        .parsed("test.iterations", number, "fix {name}")?
        .map_or(1, |v| v.val);
    let parallel = s
        .parsed("test.parallel", number, "fix {name}")?
        .map_or(1, |v| v.val);
    if iterations == 0 || parallel == 0 || parallel > MAX_PARALLEL {
        return Err(Error::config(
            format!("test.iterations must be at least 1 and test.parallel from 1 to {MAX_PARALLEL} (got {iterations} and {parallel})"),
            None,
        ));
    }
    let (runner_type, mut agent) = agent(&runner, &args.command, cwd, timeout)?;
    // `./agent.sh` means relative to the working directory, on every platform.
    if agent.program.contains('/') && Path::new(&agent.program).is_relative() {
        agent.program = agent.cwd.join(&agent.program).display().to_string();
    }
    agent.check_runnable(ctx.env.get_os("PATH"))?;
    Ok(TestSettings {
        scenario: sync::scenario_setting(ctx)?,
        runner_type,
        agent,
        iterations,
        parallel,
        pull: !args.skip_pull,
        upload: s
            .parsed(
                "test.auto_upload",
                |v| {
                    v.parse::<bool>()
                        .map_err(|_| "is not true or false".to_string())
                },
                "fix {name}",
            )?
            .is_none_or(|v| v.val),
        junit: args.junit.as_ref().map(|p| ctx.cwd.join(p)),
        run: plan::RunSettings::resolve(s)?,
        shard: shard::resolve(
            ctx,
            s.parsed(
                "test.shard",
                crate::config::project::limits::shard,
                "fix {name}",
            )?
            .map(|v| v.val),
        )?,
    })
}

/// `--timeout`, else `test.timeout`, else the default; at most a week.
fn timeout(secs: Option<f64>) -> Result<Duration> {
    match secs {
        Some(t) if t > 0.0 && t.is_finite() && t < 86_400.0 * 7.0 => Ok(Duration::from_secs_f64(t)),
        Some(t) => Err(Error::config(
            format!("test.timeout must be a positive number of seconds, not {t}"),
            None,
        )),
        None => Ok(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS)),
    }
}

/// The agent and its runner type. Its command line comes from after `--`,
/// else runner.command (a list, or one string for `sh -c`); `type:
/// function` runs the python bootstrap.
fn agent(
    runner: &RunnerConfig,
    command: &[String],
    cwd: PathBuf,
    timeout: Duration,
) -> Result<(&'static str, Agent)> {
    let env: BTreeMap<String, String> = runner.env.clone();
    let argv: Option<Vec<String>> = if !command.is_empty() {
        Some(command.to_vec())
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
            _ => return Err(Error::config(
                "no agent to run: set runner.command in fluxloop.yaml, or give it after --",
                Some("e.g. `fluxloop test -- python3 agent.py`, or in fluxloop.yaml: runner: {command: [python3, agent.py]}".into()),
            )),
        }
    };
    if let Some(mut argv) = argv {
        let program = argv.remove(0);
        let agent = Agent {
            program,
            args: argv,
            cwd,
            env,
            timeout,
        };
        return Ok(("process", agent));
    }
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
    Ok((
        "function",
        runner::function::agent(&python, &target, cwd, env, timeout),
    ))
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

/// Forked while the process is single-threaded (HTTP may start resolver
/// threads); it exits when we do.
fn start_reaper(ctx: &Ctx) -> Option<Reaper> {
    match Reaper::start() {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.out.warn(&format!(
                "cannot start the agent reaper ({e}): agents may outlive fluxloop if it is killed with SIGKILL"
            ));
            None
        }
    }
}

/// The credential and its scope, checked first: never find out after a
/// long run. `--list` and `--dry-run` only pull: nothing is uploaded, so no
/// write scope is asked for.
fn open_session(ctx: &Ctx, settings: &TestSettings, args: &TestArgs) -> Result<Option<Session>> {
    let preview = args.select.list || args.select.dry_run;
    if !(settings.pull || (settings.upload && !args.select.list)) {
        return Ok(None);
    }
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
    Ok(Some(session))
}

/// The pull stage, or without it the scenario pulled before.
fn pull(
    ctx: &Ctx,
    session: Option<&Session>,
    settings: &TestSettings,
    root: &Path,
    keep_local: bool,
) -> Result<String> {
    let Some(session) = session.filter(|_| settings.pull) else {
        return pulled_scenario(root, settings.scenario.as_deref());
    };
    let confirm = |question: &str| ctx.confirm(question);
    let input = job::pull::PullInput {
        root,
        scenario: settings.scenario.clone(),
        project_id: sync::known_project(ctx)?,
        bundle_version_id: None,
        edits: job::pull::Edits {
            keep_local,
            overwrite: ctx.globals.yes,
            confirm: ctx.can_prompt().then_some(&confirm),
        },
    };
    let report = job::pull::pull(&session.client, &input, &|note| {
        output::sync::pull_note(&ctx.out, note)
    })?;
    output::sync::pull_warnings(&ctx.out, &report);
    ctx.out.info(report.human(&ctx.out.err_style).trim_end());
    Ok(report.scenario)
}

/// The pulled inputs of `scenario`, with their personas.
fn inputs(root: &Path, scenario: &str) -> Result<Vec<Input>> {
    let pulled_dir = pulled::pulled_dir(root, scenario);
    let mut inputs = pulled::load_inputs(&pulled_dir)?;
    pulled::attach_personas(&pulled_dir, &mut inputs);
    if inputs.is_empty() {
        return Err(Error::config(
            format!("no inputs with text in {}", pulled_dir.join(pulled::INPUTS).display()),
            Some("add inputs to the scenario's bundle on the platform, then `fluxloop sync pull --yes`".into()),
        ));
    }
    Ok(inputs)
}

/// The bundle the runs are made with; results without one cannot be uploaded.
fn bundle_version_id(root: &Path, scenario: &str, upload: bool) -> Result<Option<String>> {
    let pulled_dir = pulled::pulled_dir(root, scenario);
    let meta = pulled::read_meta(&pulled_dir)?;
    let id = meta.as_ref().and_then(pulled::bundle_version_id);
    if upload && id.is_none() {
        return Err(Error::config(
            format!(
                "{} records no bundle version, so results cannot be uploaded",
                pulled_dir.join(pulled::SYNC_META).display()
            ),
            Some("run `fluxloop sync pull --yes`, or pass --skip-upload".into()),
        ));
    }
    Ok(id)
}

/// Everything a run of `test` is made of, decided before it starts.
struct Job<'a> {
    root: PathBuf,
    scenario: String,
    inputs: Vec<Input>,
    selection: plan::Selection,
    session: Option<Arc<Session>>,
    settings: &'a TestSettings,
    github: Option<GithubFiles>,
}

pub(crate) fn run(ctx: &Ctx, args: TestArgs) -> Result<Outcome> {
    let settings = resolve(ctx, &args)?;
    let root = ctx.workspace_root()?;
    let reaper = start_reaper(ctx);
    // Caught until the command ends; each phase decides what a signal does.
    let _caught = crate::signals::Caught::new();
    let pull_phase = output::sync::pull_watchdog(&ctx.out);
    let session = open_session(ctx, &settings, &args)?.map(Arc::new);
    let scenario = pull(ctx, session.as_deref(), &settings, &root, args.keep_local)?;
    // From here the runner stops the agents itself and keeps what finished.
    drop(pull_phase);
    let inputs = inputs(&root, &scenario)?;
    let selection = plan::choose(
        &root,
        &scenario,
        &inputs,
        settings.iterations,
        &args.select,
        settings.shard,
    )?;
    let preview = args.select.list || args.select.dry_run;
    if let (plan::Selection::EmptyShard { shard, runs }, Some(s), true, false) =
        (&selection, &session, settings.upload, preview)
    {
        let key = ctx.settings.raw("batch_key")?.map(|v| v.val);
        return shard::report_empty(ctx, s, &root, &scenario, key.as_deref(), (*shard, *runs));
    }
    if let Some(outcome) = plan::preview_outcome(
        &args,
        &settings,
        &root,
        &scenario,
        &inputs,
        &selection,
        session.as_deref(),
    ) {
        return Ok(outcome);
    }
    let job = Job {
        root,
        scenario,
        inputs,
        selection,
        session,
        settings: &settings,
        github: ci::github_files(&ctx.env),
    };
    run_job(ctx, &job, reaper)
}

/// Run → report → upload, each stage's report handed to `output/`.
fn run_job(ctx: &Ctx, job: &Job<'_>, reaper: Option<Reaper>) -> Result<Outcome> {
    let settings = job.settings;
    let bundle_version_id = bundle_version_id(&job.root, &job.scenario, settings.upload)?;
    let given = ctx.settings.raw("batch_key")?.map(|v| v.val);
    let batch_key = ci::fanout::batch_key(
        &ctx.env,
        given.as_deref(),
        &job.scenario,
        settings.shard.is_some(),
    )?;
    let started_at = OffsetDateTime::now_utc();
    let result_dir =
        results::create_dir(&pulled::results_root(&job.root), &job.scenario, started_at)?;
    let plan = Plan {
        agent: settings.agent.clone(),
        scenario: job.scenario.clone(),
        inputs: &job.inputs,
        iterations: settings.iterations,
        parallel: settings.parallel as usize,
        reaper: reaper.as_ref(),
        slots: job.selection.slots(),
        retries: settings.run.retries,
        max_failures: settings.run.max_failures,
        start_interval: settings.run.start_interval(),
    };
    let total = plan.total();
    announce(ctx, job, total);
    let mut info = RunInfo {
        scenario: &job.scenario,
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
    let mut lines = RunLines::new(&ctx.out, total);
    let facts = stream_facts(ctx, job, &info)?;
    let (ran, streamed) = run_streaming(job, &plan, &result_dir, &info, &mut lines, facts)?;
    // No agent is left running: let the reaper go.
    drop(plan);
    drop(reaper);
    lines.done();
    let input = ReportInput {
        result_dir: &result_dir,
        junit: settings
            .junit
            .clone()
            .unwrap_or_else(|| result_dir.join(results::JUNIT)),
        inputs: &job.inputs,
    };
    let mut reported = job::report::report(&input, &mut info, ran)?;
    if let Some(e) = reported.stopped.take() {
        if matches!(e, Error::Interrupted) {
            output::test::stopped(
                &ctx.out,
                reported.tally.total,
                total,
                &job.root,
                &ctx.cwd,
                &result_dir,
            );
        }
        return Err(e);
    }
    finish(ctx, job, result_dir.clone(), started_at, reported, streamed)
}

/// The batch a streaming upload sends to: only when the runs are uploaded.
fn stream_facts(ctx: &Ctx, job: &Job<'_>, info: &RunInfo<'_>) -> Result<Option<StreamFacts>> {
    let (Some(session), Some(bundle)) = (&job.session, info.bundle_version_id) else {
        return Ok(None);
    };
    if !job.settings.upload {
        return Ok(None);
    }
    // The runs may outlast a stored login's access token: refreshed
    // before the uploader's first request (and again on `token_expired`).
    // A refresh that fails here fails the upload, which keeps the results
    // and says how to upload them later.
    let _ = session.client.refresh_ahead();
    Ok(Some(StreamFacts {
        bundle_version_id: bundle.to_string(),
        started_at: results::rfc3339(info.started_at),
        ci: ci::detect(&ctx.env),
        batch_key: info.batch_key.map(String::from),
        shard: info.shard,
    }))
}

/// The run stage, its finished runs streamed to the platform meanwhile
/// when `facts` says where.
fn run_streaming(
    job: &Job<'_>,
    plan: &Plan<'_>,
    result_dir: &Path,
    info: &RunInfo<'_>,
    lines: &mut RunLines<'_>,
    facts: Option<StreamFacts>,
) -> Result<(job::run::RunReport, Option<Stream>)> {
    let mut stream = job
        .session
        .clone()
        .zip(facts)
        .map(|(s, facts)| job::stream::start(s, result_dir.to_path_buf(), facts));
    let mut sink = Streaming {
        lines,
        stream: stream.as_mut(),
    };
    let ran = job::run::run(plan, result_dir, info, &mut sink)?;
    Ok((ran, stream))
}

/// Hands each finished run to the progress lines and the uploader.
struct Streaming<'a, 'l> {
    lines: &'a mut RunLines<'l>,
    stream: Option<&'a mut Stream>,
}

impl RunProgress for Streaming<'_, '_> {
    fn finished(&mut self, record: &TraceRecord, tally: &Tally) {
        if let Some(stream) = self.stream.as_mut() {
            stream.offer(record);
        }
        self.lines.finished(record, tally);
    }
}

/// `Running N runs (…)`: what is about to run, and how.
fn announce(ctx: &Ctx, job: &Job<'_>, total: usize) {
    let settings = job.settings;
    let shape = plan::shape(
        job.inputs.len(),
        settings.iterations,
        job.selection.slots().is_some(),
        settings.shard,
    );
    let command = settings.agent.display();
    output::test::announce(
        &ctx.out,
        total,
        &shape,
        settings.parallel,
        settings.agent.timeout,
        &command,
    );
}

/// The report of finished runs, uploaded when asked, with the exit code.
fn finish(
    ctx: &Ctx,
    job: &Job<'_>,
    result_dir: PathBuf,
    started_at: OffsetDateTime,
    reported: Reported,
    streamed: Option<Stream>,
) -> Result<Outcome> {
    let (code, threshold) = plan::verdict(&reported.tally, &job.settings.run);
    let facts = TestFacts {
        scenario: job.scenario.clone(),
        runner_type: job.settings.runner_type,
        result_dir: result_dir.clone(),
        root: job.root.clone(),
        started_at,
        threshold,
        github: job.github.is_some() && !ctx.globals.json,
    };
    let mut report = TestReport::new(facts, &reported);
    output::test::annotations(&ctx.out, &reported.tally);
    let mut upload_failure = None;
    if let (Some(session), true) = (&job.session, job.settings.upload) {
        match upload(
            ctx,
            job,
            session,
            &result_dir,
            reported.tally.total,
            streamed,
        ) {
            Ok(u) => report.upload = Some(u),
            Err(e) => {
                report.upload_error = Some(e.to_string());
                upload_failure = Some(e);
            }
        }
    }
    output::test::github_summary(&ctx.out, job.github.as_ref(), &report);
    let Some(e) = upload_failure else {
        return Ok(Outcome {
            report: Box::new(report),
            code,
        });
    };
    // The results are safe on disk; say how to send them later.
    if !ctx.out.json {
        ctx.out.error(&e);
    }
    output::test::kept_results(&ctx.out, &job.root, &ctx.cwd, &result_dir);
    Ok(Outcome {
        report: Box::new(report),
        code: e.exit_code(),
    })
}

/// The upload stage of `test`: what streaming left, or (for a run that
/// was not streamed) the whole directory.
fn upload(
    ctx: &Ctx,
    job: &Job<'_>,
    session: &Session,
    result_dir: &Path,
    runs: usize,
    streamed: Option<Stream>,
) -> Result<job::upload::UploadReport> {
    let _stop = output::sync::upload_watchdog(&ctx.out, &job.root, &ctx.cwd, result_dir);
    // The runs may have outlived the login's access token. A refresh
    // that fails here fails the upload below, which keeps the results
    // and says how to upload them later.
    let _ = session.client.refresh_ahead();
    ctx.out.info(&format!("Uploading {runs} runs"));
    let ci = ci::detect(&ctx.env);
    let input = UploadInput {
        root: &job.root,
        dir: result_dir,
        scenario_hint: Some(&job.scenario),
        skipped_lines: 0,
        ci: &ci,
        endpoint: &session.endpoint.val,
        web_url: sync::web_url_setting(ctx)?,
    };
    let mut lines = output::sync::ChunkLines(&ctx.out);
    let report = match streamed {
        Some(stream) => job::upload::upload_streamed(
            &session.client,
            &input,
            stream.close(),
            &mut BigOnly(&mut lines),
        )?,
        None => job::upload::upload(&session.client, &input, &mut lines)?,
    };
    output::sync::upload_done(&ctx.out, job.github.as_ref(), &job.root, &report);
    Ok(report)
}

/// Chunk lines of a streamed upload only once it reaches a full chunk:
/// how many chunks a small one took depends on the agent's pace, and a
/// line that comes and goes with timing says nothing.
struct BigOnly<'a, 'o>(&'a mut output::sync::ChunkLines<'o>);

impl UploadProgress for BigOnly<'_, '_> {
    fn chunk(&mut self, sent: usize, chunks: usize) {
        if sent >= crate::upload::CHUNK {
            self.0.chunk(sent, chunks);
        }
    }
}
