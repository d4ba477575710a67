//! `sync pull` and `sync upload` (CLI.md §4, §5; PLATFORM-API §4, §5).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::api::types::{Project, Scenario};
use crate::api::Client;
use crate::auth::login::{self, Session};
use crate::auth::scope::{self, Need};
use crate::cli::{PullArgs, SyncCommand, UploadArgs};
use crate::config::Origin;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::{github, Human, Outcome, Style};
use crate::signals::StopAtOnce;
use crate::{ci, pulled, results, signals, upload};

pub(crate) fn run(ctx: &Ctx, cmd: SyncCommand) -> Result<Outcome> {
    let _caught = signals::Caught::new();
    match cmd {
        SyncCommand::Pull(args) => {
            let _stop = pull_watchdog(ctx);
            let session = login::session(ctx)?;
            scope::require(ctx, &session.client, &[Need::Read])?;
            let report = pull(ctx, &session.client, &args)?;
            let root = ctx.workspace_root()?;
            ctx.out
                .info(&format!("Wrote {}", display_rel(&root, &report.dir)));
            Ok(Outcome::ok(report))
        }
        SyncCommand::Upload(args) => upload_command(ctx, &args),
    }
}

/// What `sync pull` did.
#[derive(Debug, Serialize)]
pub(crate) struct PullReport {
    pub(crate) scenario: String,
    pub(crate) scenario_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) bundle_version_id: Option<String>,
    pub(crate) bundle_version: Option<String>,
    pub(crate) inputs: usize,
    pub(crate) personas: usize,
    pub(crate) criteria: usize,
    /// The `pulled/` directory.
    pub(crate) dir: PathBuf,
    /// Locally edited files kept (`--keep-local`).
    pub(crate) kept_local: Vec<String>,
    /// Locally edited files replaced (`--yes`).
    pub(crate) overwritten: Vec<String>,
}

impl Human for PullReport {
    fn human(&self, _: &Style) -> String {
        let bundle = self
            .bundle_version
            .as_ref()
            .map(|v| format!(" (bundle v{v})"))
            .unwrap_or_default();
        let mut s = format!(
            "Pulled {}, {}, {} for {}{bundle}\n",
            plural(self.inputs, "input", "inputs"),
            plural(self.personas, "persona", "personas"),
            plural(self.criteria, "criterion", "criteria"),
            self.scenario
        );
        if !self.kept_local.is_empty() {
            s.push_str(&format!(
                "Kept local edits: {}\n",
                self.kept_local.join(", ")
            ));
        }
        s
    }
}

/// The project for listing scenarios: flag, `fluxloop.yaml`, `.fluxloop/project.json`,
/// else the only project the credential can see.
fn resolve_project(ctx: &Ctx, client: &Client, flag: Option<&str>) -> Result<(String, Origin)> {
    if let Some(p) = flag.filter(|p| !p.trim().is_empty()) {
        return Ok((p.trim().to_string(), Origin::Flag("--project-id")));
    }
    if let Some(c) = ctx.config()? {
        if let Some(p) = c
            .config
            .project_id
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            return Ok((
                p.trim().to_string(),
                Origin::ProjectConfig {
                    path: c.path.clone(),
                    key: "project_id",
                },
            ));
        }
    }
    if let Some((path, pj)) = ctx.project_json()? {
        if let Some(p) = pj.project_id.as_deref().filter(|p| !p.trim().is_empty()) {
            return Ok((p.trim().to_string(), Origin::ProjectJson(path.clone())));
        }
    }
    let projects: Vec<Project> = client.get("/api/projects")?;
    match projects.as_slice() {
        [] => Err(Error::NotFound {
            what: "project (this credential sees no project)".into(),
            hint: Some("pass --project-id P, or check the key's project on the platform".into()),
        }),
        [one] => Ok((one.id.clone(), Origin::Default)),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|p| match &p.name {
                    Some(n) => format!("{n} ({})", p.id),
                    None => p.id.clone(),
                })
                .collect();
            Err(Error::config(
                format!(
                    "several projects are visible to this credential: {}",
                    list.join(", ")
                ),
                Some("choose one with --project-id P, or set project_id in fluxloop.yaml".into()),
            ))
        }
    }
}

/// Finds a scenario by id or name in `project`.
fn resolve_scenario(client: &Client, project: &str, wanted: &str) -> Result<Scenario> {
    let path = format!(
        "/api/scenarios?project_id={}",
        crate::api::query_escape(project)
    );
    let scenarios: Vec<Scenario> = client.get(&path)?;
    let by_id = scenarios.iter().find(|s| s.id == wanted);
    let by_name = || scenarios.iter().find(|s| s.name.as_deref() == Some(wanted));
    let by_name_ci = || {
        scenarios.iter().find(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
    };
    if let Some(s) = by_id.or_else(by_name).or_else(by_name_ci) {
        return Ok(s.clone());
    }
    let names: Vec<&str> = scenarios.iter().filter_map(|s| s.name.as_deref()).collect();
    Err(Error::NotFound {
        what: format!("scenario '{wanted}' in project {project}"),
        hint: Some(if names.is_empty() {
            "the project has no scenarios yet; create one on the platform".into()
        } else {
            format!("scenarios in this project: {}", names.join(", "))
        }),
    })
}

/// The scenario setting: `--scenario`, else `scenario:` in `fluxloop.yaml`.
pub(crate) fn scenario_setting(ctx: &Ctx, flag: Option<&str>) -> Result<Option<String>> {
    if let Some(s) = flag.filter(|s| !s.trim().is_empty()) {
        return Ok(Some(s.trim().to_string()));
    }
    Ok(ctx
        .config()?
        .and_then(|c| c.config.scenario.clone())
        .filter(|s| !s.trim().is_empty()))
}

/// `sync pull`: resolve, download, check local edits, write.
pub(crate) fn pull(ctx: &Ctx, client: &Client, args: &PullArgs) -> Result<PullReport> {
    let wanted = scenario_setting(ctx, args.scenario.as_deref())?;
    let mut body = serde_json::json!({
        "include_inputs": true,
        "include_personas": true,
        "include_criteria": true,
    });
    let mut project_id = None;
    let mut scenario_id = None;
    if let Some(bundle) = args
        .bundle_version_id
        .as_deref()
        .filter(|b| !b.trim().is_empty())
    {
        body["bundle_version_id"] = Value::String(bundle.trim().to_string());
        if let Some(p) = args.project_id.as_deref().filter(|p| !p.trim().is_empty()) {
            body["project_id"] = Value::String(p.trim().to_string());
            project_id = Some(p.trim().to_string());
        }
    } else {
        let (project, _origin) = resolve_project(ctx, client, args.project_id.as_deref())?;
        body["project_id"] = Value::String(project.clone());
        if let Some(w) = &wanted {
            let s = resolve_scenario(client, &project, w)?;
            body["scenario_id"] = Value::String(s.id.clone());
            scenario_id = Some(s.id);
        }
        project_id = Some(project);
    }
    // The response is spooled to a file and parsed item by item, so a pull
    // of any size costs about the same memory.
    let root = ctx.workspace_root()?;
    let fluxloop_dir = root.join(".fluxloop");
    std::fs::create_dir_all(&fluxloop_dir)
        .map_err(|e| Error::io("create directory", &fluxloop_dir, e))?;
    // Named with our pid: a pull killed while downloading leaves it, and
    // the next pull removes it.
    let spool_path = fluxloop_dir.join(crate::pull_spool::temp_name("body"));
    let spool = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)
        .map_err(|e| Error::io("create", &spool_path, e))?;
    let spooled = (|| {
        client.post_to_file("/api/sync/pull", &body, &spool)?;
        std::io::Seek::rewind(&mut &spool).map_err(|e| Error::io("read", &spool_path, e))?;
        pulled::parse_pull(&spool, &fluxloop_dir).map_err(|why| Error::Network {
            url: format!("{}/api/sync/pull", client.base()),
            detail: format!(
                "POST answered HTTP 200 with a body that is not the expected JSON pull response ({why}); is the endpoint a FluxLoop platform?"
            ),
        })
    })();
    drop(spool);
    let _ = std::fs::remove_file(&spool_path);
    let resp = spooled?;
    let scenario = pulled::scenario_name(&resp.doc)
        .or(wanted)
        .or_else(|| {
            resp.doc
                .pointer("/bundle_version/scenario_id")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| "default".into());
    let dir = pulled::pulled_dir(&root, &scenario);

    let edits = pulled::local_edits(&dir)?;
    let mut keep = Vec::new();
    let mut overwritten = Vec::new();
    if !edits.is_empty() {
        let shown: Vec<String> = edits
            .iter()
            .map(|f| display_rel(&root, &dir.join(f)))
            .collect();
        if args.keep_local {
            keep = edits.clone();
        } else if ctx.globals.yes {
            overwritten = shown.clone();
        } else if ctx.can_prompt() {
            if ctx.confirm(&format!(
                "{} edited locally; overwrite with the platform's version?",
                shown.join(", ")
            ))? {
                overwritten = shown.clone();
            } else {
                return Err(Error::SyncConflict { files: shown });
            }
        } else {
            return Err(Error::SyncConflict { files: shown });
        }
    }
    let bundle_version_id = pulled::bundle_version_id(&resp.doc);
    let bundle_version = pulled::bundle_version(&resp.doc);
    let doc_scenario_id = resp
        .doc
        .pointer("/bundle_version/scenario_id")
        .and_then(Value::as_str)
        .map(String::from);
    let doc_project_id = resp
        .doc
        .pointer("/bundle_version/project_id")
        .and_then(Value::as_str)
        .map(String::from);
    let written = pulled::write_pull(&dir, resp, &keep)?;
    if !overwritten.is_empty() {
        ctx.out.warn(&format!(
            "replaced local edits to {}",
            overwritten.join(", ")
        ));
    }
    Ok(PullReport {
        scenario,
        scenario_id: scenario_id.or(doc_scenario_id),
        project_id: project_id.or(doc_project_id),
        bundle_version_id,
        bundle_version,
        inputs: written.inputs,
        personas: written.personas,
        criteria: written.criteria,
        kept_local: written
            .kept
            .iter()
            .map(|f| display_rel(&root, &dir.join(f)))
            .collect(),
        overwritten,
        dir,
    })
}

/// Ends a pull at once on SIGINT/SIGTERM: pulled/ is swapped in whole, so
/// there is nothing to finish or undo.
pub(crate) fn pull_watchdog(ctx: &Ctx) -> StopAtOnce {
    let out = std::sync::Arc::clone(&ctx.out);
    StopAtOnce::new(move |sig| {
        out.warn(&format!(
            "interrupted by {sig} while pulling; pulled/ is left as it was or holds the new bundle whole"
        ))
    })
}

/// Ends an upload at once on SIGINT/SIGTERM with the command that resumes
/// it (the upload state is saved after each chunk, so nothing is sent twice).
pub(crate) fn upload_watchdog(ctx: &Ctx, dir: &Path) -> StopAtOnce {
    let out = std::sync::Arc::clone(&ctx.out);
    let root = ctx.workspace_root().unwrap_or_else(|_| ctx.cwd.clone());
    let message = format!(
        "the results are kept in {}; resume with `fluxloop sync upload --result-dir {}`",
        display_rel(&root, dir),
        display_rel(&ctx.cwd, dir)
    );
    StopAtOnce::new(move |sig| {
        out.warn(&format!("interrupted by {sig} while uploading; {message}"))
    })
}

/// `3 runs`, `1 run`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `path` relative to the workspace root when inside it.
pub(crate) fn display_rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What an upload did.
#[derive(Debug, Serialize)]
pub(crate) struct UploadReport {
    pub(crate) run_batch_id: String,
    pub(crate) runs: usize,
    pub(crate) chunks: usize,
    /// Trace lines that were not records and were left out.
    pub(crate) skipped_lines: usize,
    /// Runs cut to fit one request.
    pub(crate) truncated_runs: usize,
    /// Where people see the results on the platform.
    pub(crate) url: String,
    pub(crate) result_dir: PathBuf,
}

impl Human for UploadReport {
    fn human(&self, style: &Style) -> String {
        format!(
            "Uploaded {} runs: run batch {}\nView the results: {}\n",
            self.runs,
            style.bold(&self.run_batch_id),
            self.url
        )
    }
}

/// Scenario and bundle of a result directory, from its `summary.json`
/// (ours records both; FluxLoop CLI 0.4's has the scenario as `experiment_name`).
struct ResultMeta {
    scenario: Option<String>,
    bundle_version_id: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
    /// `complete` of our summary.json: false while (or if killed while) the
    /// run writes the directory; absent in FluxLoop CLI 0.4's.
    complete: Option<bool>,
}

fn result_meta(dir: &Path) -> ResultMeta {
    let summary: Option<Value> = std::fs::read(dir.join(results::SUMMARY))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let s = |k: &str| {
        summary
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    ResultMeta {
        scenario: s("scenario").or_else(|| s("experiment_name")),
        bundle_version_id: s("bundle_version_id"),
        started_at: s("started_at").or_else(|| s("created_at")),
        completed_at: s("completed_at").or_else(|| s("created_at")),
        complete: summary
            .as_ref()
            .and_then(|v| v.get("complete"))
            .and_then(Value::as_bool),
    }
}

/// Uploads result directory `dir` with the session's client and prints progress.
pub(crate) fn upload_dir(
    ctx: &Ctx,
    session: &Session,
    dir: &Path,
    scenario_hint: Option<&str>,
    skipped: usize,
) -> Result<UploadReport> {
    let root = ctx.workspace_root()?;
    let meta = result_meta(dir);
    let scenario = meta
        .scenario
        .clone()
        .or_else(|| scenario_hint.map(String::from))
        .or_else(|| {
            dir.file_name()
                .and_then(|n| results::parse_dir_name(&n.to_string_lossy()))
                .map(|(s, _, _)| s)
        });
    let bundle = match meta.bundle_version_id.clone() {
        Some(b) => b,
        None => scenario
            .as_deref()
            .and_then(|s| {
                pulled::read_meta(&pulled::pulled_dir(&root, s))
                    .ok()
                    .flatten()
            })
            .and_then(|m| pulled::bundle_version_id(&m))
            .ok_or_else(|| {
                Error::config(
                    format!(
                        "no bundle version recorded for the results in {}",
                        dir.display()
                    ),
                    Some("run `fluxloop sync pull` for the scenario first".into()),
                )
            })?,
    };
    let now = results::rfc3339(time::OffsetDateTime::now_utc());
    let ci = ci::detect(&ctx.env);
    let info = upload::BatchInfo {
        bundle_version_id: &bundle,
        started_at: meta.started_at.as_deref().unwrap_or(&now),
        completed_at: meta.completed_at.as_deref().unwrap_or(&now),
        ci: &ci,
    };
    let mut chunk_no = 0;
    let uploaded = upload::upload(&session.client, dir, &info, &mut |sent, _| {
        chunk_no += 1;
        if chunk_no > 1 || sent >= upload::CHUNK {
            ctx.out.info(&format!(
                "Uploaded {sent} runs ({chunk_no} chunk{})",
                if chunk_no == 1 { "" } else { "s" }
            ));
        }
    })?;
    let url = format!(
        "{}/run-batches/{}",
        session.endpoint.val.trim_end_matches('/'),
        uploaded.run_batch_id
    );
    if ctx.out.github {
        if let Some(path) = ctx.env.path("GITHUB_OUTPUT") {
            let text = github::outputs(&[
                ("run-batch-id", uploaded.run_batch_id.clone()),
                ("run-batch-url", url.clone()),
            ]);
            if let Err(e) = github::append(&path, &text) {
                ctx.out.warn(&format!(
                    "cannot write GITHUB_OUTPUT {}: {e}",
                    path.display()
                ));
            }
        }
    }
    if uploaded.truncated > 0 {
        ctx.out.warn(&format!(
            "{} too large for one request: its transcript was shortened in the upload (marked \"truncated\": true); {} keeps it whole",
            plural(uploaded.truncated, "run was", "runs were"),
            display_rel(&root, &dir.join(results::TRACE))
        ));
    }
    Ok(UploadReport {
        run_batch_id: uploaded.run_batch_id,
        runs: uploaded.runs,
        chunks: uploaded.chunks,
        skipped_lines: skipped,
        truncated_runs: uploaded.truncated,
        url,
        result_dir: dir.to_path_buf(),
    })
}

/// Stops on trace lines that are not records (they would be lost without a
/// word), unless `--skip-invalid`; a torn last line, as a crash leaves, is
/// skipped with a warning. Returns how many lines are skipped.
fn check_trace(ctx: &Ctx, dir: &Path, skip_invalid: bool) -> Result<usize> {
    let scan = crate::result_dir::scan_trace(dir)?;
    let path = dir.join(results::TRACE);
    let root = ctx.workspace_root()?;
    let shown = display_rel(&root, &path);
    if !scan.invalid.is_empty() {
        let lines = crate::result_dir::line_list(&scan.invalid);
        if !skip_invalid {
            let what = if scan.invalid.len() == 1 {
                format!("line {lines} is not a run record")
            } else {
                format!("lines {lines} are not run records")
            };
            return Err(Error::config(
                format!("{shown}: {what}"),
                Some(format!(
                    "repair or remove {}, or pass --skip-invalid to upload the other {}",
                    if scan.invalid.len() == 1 {
                        "it"
                    } else {
                        "them"
                    },
                    plural(scan.records, "run", "runs")
                )),
            ));
        }
        ctx.out.warn(&format!(
            "skipped {} of {shown} that {} (--skip-invalid): {lines}",
            plural(scan.invalid.len(), "line", "lines"),
            if scan.invalid.len() == 1 {
                "is not a run record"
            } else {
                "are not run records"
            },
        ));
    }
    if let Some(n) = scan.torn_last {
        ctx.out.warn(&format!(
            "skipped the cut-off last line {n} of {shown} (a run interrupted while it was written)"
        ));
    }
    Ok(scan.invalid.len() + usize::from(scan.torn_last.is_some()))
}

fn upload_command(ctx: &Ctx, args: &UploadArgs) -> Result<Outcome> {
    let scenario = scenario_setting(ctx, args.scenario.as_deref())?;
    let root = ctx.workspace_root()?;
    let dir = match &args.result_dir {
        Some(d) => {
            let d = ctx.cwd.join(d);
            if !d.join(results::TRACE).is_file() {
                return Err(Error::MissingFile {
                    path: d.join(results::TRACE),
                    what: "trace file (--result-dir)",
                });
            }
            d
        }
        None => results::newest_dir(&pulled::results_root(&root), scenario.as_deref())?
            .ok_or_else(|| Error::NotFound {
                what: match &scenario {
                    Some(s) => format!(
                        "result directory for scenario {s} under {}",
                        pulled::results_root(&root).display()
                    ),
                    None => format!(
                        "result directory under {}",
                        pulled::results_root(&root).display()
                    ),
                },
                hint: Some("run `fluxloop test` first, or pass --result-dir DIR".into()),
            })?,
    };
    // The directory is checked before any network use: a run still going
    // or a damaged trace is the user's to settle, not the platform's.
    crate::result_dir::ensure_finished(&dir)?;
    let skipped = check_trace(ctx, &dir, args.skip_invalid)?;
    if result_meta(&dir).complete == Some(false) {
        ctx.out.warn(&format!(
            "the run that wrote {} did not finish (was it killed?); uploading the runs it recorded",
            display_rel(&root, &dir)
        ));
    }
    let _stop = upload_watchdog(ctx, &dir);
    let session = login::session(ctx)?;
    scope::require(ctx, &session.client, &[Need::Write])?;
    ctx.out
        .info(&format!("Uploading {}", display_rel(&root, &dir)));
    let report = upload_dir(ctx, &session, &dir, scenario.as_deref(), skipped)?;
    Ok(Outcome::ok(report))
}
