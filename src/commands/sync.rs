//! `sync pull` and `sync upload` (CLI.md §4, §5; PLATFORM-API §4, §5).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::api::pull::{sync_pull, sync_pull_url, PullBody};
use crate::api::types::Scenario;
use crate::api::Client;
use crate::auth::login::{self, Session};
use crate::auth::scope::{self, Need};
use crate::cli::{PullArgs, SyncCommand, UploadArgs};
use crate::config::project::limits::Shard;
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
            if !report.up_to_date {
                ctx.out
                    .info(&format!("Wrote {}", display_rel(&root, &report.dir)));
            }
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
    /// The platform said the pulled files are current (304); nothing changed.
    pub(crate) up_to_date: bool,
}

impl Human for PullReport {
    fn human(&self, _: &Style) -> String {
        let bundle = self
            .bundle_version
            .as_ref()
            .map(|v| format!(" (bundle v{v})"))
            .unwrap_or_default();
        if self.up_to_date {
            return format!("{} is up to date{bundle}\n", self.scenario);
        }
        let mut s = format!(
            "Pulled {}, {}, {} for {}{bundle}\n",
            plural(self.inputs, "input", "inputs"),
            plural(self.personas, "persona", "personas"),
            plural(self.criteria, "criterion", "criteria"),
            self.scenario
        );
        if !self.kept_local.is_empty() {
            s.push_str(&format!(
                "Kept your local edits of {} (the platform's version of {} was not written)\n",
                self.kept_local.join(", "),
                if self.kept_local.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
        }
        s
    }
}

/// The project named by flag, `fluxloop.yaml` or `.fluxloop/project.json`.
fn known_project(ctx: &Ctx, flag: Option<&str>) -> Result<Option<String>> {
    if let Some(p) = flag.filter(|p| !p.trim().is_empty()) {
        return Ok(Some(p.trim().to_string()));
    }
    if let Some(p) = ctx
        .config()?
        .and_then(|c| c.config.project_id.clone())
        .filter(|p| !p.trim().is_empty())
    {
        return Ok(Some(p.trim().to_string()));
    }
    Ok(ctx
        .project_json()?
        .and_then(|(_, pj)| pj.project_id.clone())
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().to_string()))
}

/// A listing the platform refused to this credential (401/403/404): the
/// hosted platform may keep listings to logins. Lookups are an
/// optimisation, so the pull goes on with what is known.
fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound { .. }
            | Error::PermissionDenied { .. }
            | Error::InvalidCredential { .. }
            | Error::Api {
                status: 401 | 403 | 404,
                ..
            }
    )
}

/// A listing, or `None` when the platform refused it (see [`refused`]).
fn lookup<T>(listing: Result<T>) -> Result<Option<T>> {
    match listing {
        Ok(v) => Ok(Some(v)),
        Err(e) if refused(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The only project the credential sees, when the platform lists them.
fn only_project(client: &Client) -> Result<Option<String>> {
    let Some(projects) = lookup(crate::api::projects::list_projects(client))? else {
        return Ok(None);
    };
    match projects.as_slice() {
        [] => Err(Error::NotFound {
            what: "project (this credential sees no project)".into(),
            hint: Some("pass --project-id P, or check the key's project on the platform".into()),
        }),
        [one] => Ok(Some(one.id.clone())),
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

/// Finds a scenario by id or name in `project`; `None` when the platform
/// does not list scenarios to this credential.
fn find_scenario(client: &Client, project: &str, wanted: &str) -> Result<Option<Scenario>> {
    let Some(scenarios) = lookup(crate::api::projects::list_scenarios(client, project))? else {
        return Ok(None);
    };
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
        return Ok(Some(s.clone()));
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

/// What a pull asks the platform for, and how it was decided.
struct PullRequest {
    body: PullBody,
    project_id: Option<String>,
    scenario_id: Option<String>,
    /// Said when a lookup was refused and the pull went on without it.
    note: Option<String>,
}

/// The pull's body: the bundle asked for, else the scenario found by the
/// listings, else (when the platform lists nothing to this credential)
/// the previous pull's bundle of the scenario, else whatever the platform
/// picks for the key's project.
fn pull_request(
    ctx: &Ctx,
    client: &Client,
    args: &PullArgs,
    wanted: Option<&str>,
) -> Result<PullRequest> {
    let mut req = PullRequest {
        body: PullBody::default(),
        project_id: None,
        scenario_id: None,
        note: None,
    };
    let project = match known_project(ctx, args.project_id.as_deref())? {
        Some(p) => Some(p),
        None if args.bundle_version_id.is_some() => None,
        None => only_project(client)?,
    };
    if let Some(p) = &project {
        req.body.project_id = Some(p.clone());
    }
    req.project_id = project.clone();
    if let Some(bundle) = args
        .bundle_version_id
        .as_deref()
        .filter(|b| !b.trim().is_empty())
    {
        req.body.bundle_version_id = Some(bundle.trim().to_string());
        return Ok(req);
    }
    let found = match (&project, wanted) {
        (Some(p), Some(w)) => find_scenario(client, p, w)?,
        _ => None,
    };
    if let Some(s) = found {
        req.body.scenario_id = Some(s.id.clone());
        req.scenario_id = Some(s.id);
        return Ok(req);
    }
    let Some(w) = wanted else {
        return Ok(req);
    };
    let root = ctx.workspace_root()?;
    let previous = pulled::read_meta(&pulled::pulled_dir(&root, w))
        .ok()
        .flatten();
    let same = previous
        .as_ref()
        .filter(|m| pulled::scenario_name(m).as_deref() == Some(w));
    match same.and_then(|m| pulled::bundle_version_id(m).map(|id| (id, pulled::bundle_version(m))))
    {
        Some((id, version)) => {
            req.note = Some(format!(
                "note: the platform lists no scenarios to this credential; pulling the bundle of the previous pull of {w} ({})",
                version.map(|v| format!("bundle v{v}")).unwrap_or_else(|| id.clone())
            ));
            req.body.bundle_version_id = Some(id);
        }
        None => {
            req.note = Some(format!(
                "note: the platform lists no scenarios to this credential and {w} was never pulled here; the platform picks the newest bundle of the key's project"
            ));
        }
    }
    Ok(req)
}

/// `sync pull`: resolve, download (conditionally, when the last pull of the
/// scenario is intact), check local edits, write.
pub(crate) fn pull(ctx: &Ctx, client: &Client, args: &PullArgs) -> Result<PullReport> {
    let wanted = scenario_setting(ctx, args.scenario.as_deref())?;
    let req = pull_request(ctx, client, args, wanted.as_deref())?;
    if let Some(note) = &req.note {
        ctx.out.info(note);
    }
    let root = ctx.workspace_root()?;
    // A copy the user has not edited can be kept when the platform's is the same.
    let current = wanted.as_deref().map(|w| pulled::pulled_dir(&root, w));
    let etag = match &current {
        Some(dir) if pulled::local_edits(dir)?.is_empty() => pulled::read_meta(dir)?
            .filter(|m| pulled::scenario_name(m) == wanted)
            .and_then(|m| pulled::recorded_etag(&m)),
        _ => None,
    };
    // The response is spooled to a file and parsed item by item, so a pull
    // of any size costs about the same memory.
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
        let got = sync_pull(client, &req.body, &spool, etag.as_deref())?;
        if got.not_modified {
            return Ok(None);
        }
        std::io::Seek::rewind(&mut &spool).map_err(|e| Error::io("read", &spool_path, e))?;
        let resp = pulled::parse_pull(&spool, &fluxloop_dir).map_err(|why| Error::Network {
            url: sync_pull_url(client),
            detail: format!(
                "POST answered HTTP 200 with a body that is not the expected JSON pull response ({why}); is the endpoint a FluxLoop platform?"
            ),
        })?;
        Ok(Some((resp, got.etag)))
    })();
    drop(spool);
    let _ = std::fs::remove_file(&spool_path);
    match spooled? {
        None => up_to_date(
            &req,
            current.unwrap_or_default(),
            wanted.unwrap_or_default(),
        ),
        Some((resp, etag)) => write_pulled(ctx, args, &req, resp, wanted, etag.as_deref()),
    }
}

/// A 304: the pulled files stay as they are.
fn up_to_date(req: &PullRequest, dir: PathBuf, scenario: String) -> Result<PullReport> {
    let meta = pulled::read_meta(&dir)?.unwrap_or_default();
    let count = |name: &str| -> usize {
        std::fs::read(dir.join(name))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
            .map_or(0, |v| v.len())
    };
    Ok(PullReport {
        scenario,
        scenario_id: req.scenario_id.clone(),
        project_id: req.project_id.clone(),
        bundle_version_id: pulled::bundle_version_id(&meta),
        bundle_version: pulled::bundle_version(&meta),
        inputs: count("inputs.json"),
        personas: count("personas.json"),
        criteria: count("criteria.json"),
        dir,
        kept_local: vec![],
        overwritten: vec![],
        up_to_date: true,
    })
}

/// Checks local edits against a new response and writes it.
fn write_pulled(
    ctx: &Ctx,
    args: &PullArgs,
    req: &PullRequest,
    resp: pulled::PullResponse,
    wanted: Option<String>,
    etag: Option<&str>,
) -> Result<PullReport> {
    let root = ctx.workspace_root()?;
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
    let (keep, overwritten) = settle_edits(ctx, args, &root, &dir)?;
    let bundle_version_id = pulled::bundle_version_id(&resp.doc);
    let bundle_version = pulled::bundle_version(&resp.doc);
    let doc_id = |pointer: &str| {
        resp.doc
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(String::from)
    };
    let doc_scenario_id = doc_id("/bundle_version/scenario_id");
    let doc_project_id = doc_id("/bundle_version/project_id");
    let written = pulled::write_pull(&dir, resp, &keep, etag)?;
    if !overwritten.is_empty() {
        ctx.out.warn(&format!(
            "replaced local edits to {}",
            overwritten.join(", ")
        ));
    }
    Ok(PullReport {
        scenario,
        scenario_id: req.scenario_id.clone().or(doc_scenario_id),
        project_id: req.project_id.clone().or(doc_project_id),
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
        up_to_date: false,
    })
}

/// Local edits of the pulled files: kept (`--keep-local`), replaced
/// (`--yes`, or "y" at the prompt), else a conflict (exit 12).
fn settle_edits(
    ctx: &Ctx,
    args: &PullArgs,
    root: &Path,
    dir: &Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let edits = pulled::local_edits(dir)?;
    if edits.is_empty() {
        return Ok((vec![], vec![]));
    }
    let shown: Vec<String> = edits
        .iter()
        .map(|f| display_rel(root, &dir.join(f)))
        .collect();
    if args.keep_local {
        return Ok((edits, vec![]));
    }
    if ctx.globals.yes {
        return Ok((vec![], shown));
    }
    if !ctx.can_prompt() {
        return Err(Error::SyncConflict { files: shown });
    }
    if ctx.confirm(&format!(
        "{} edited locally; overwrite with the platform's version?",
        shown.join(", ")
    ))? {
        Ok((vec![], shown))
    } else {
        // "No" keeps the edits, as --keep-local does; the report says so.
        Ok((edits, vec![]))
    }
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
    /// Stored by an earlier upload: the platform kept nothing new.
    pub(crate) already_uploaded: bool,
}

impl Human for UploadReport {
    fn human(&self, style: &Style) -> String {
        if self.already_uploaded {
            return format!(
                "Already uploaded: these {} runs are run batch {}; nothing new was stored\nView the results: {}\n",
                self.runs,
                style.bold(&self.run_batch_id),
                self.url
            );
        }
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
    batch_key: Option<String>,
    shard: Option<Shard>,
}

fn result_meta(dir: &Path) -> ResultMeta {
    let summary = results::Summary::read(dir).unwrap_or_default();
    let text = |s: Option<&str>| s.map(String::from);
    ResultMeta {
        scenario: text(summary.scenario()),
        bundle_version_id: text(summary.bundle_version_id()),
        started_at: text(summary.started_at().or(summary.created_at())),
        completed_at: text(summary.completed_at().or(summary.created_at())),
        complete: summary.complete,
        batch_key: text(summary.batch_key()),
        shard: summary.shard(),
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
        batch_key: meta.batch_key.as_deref(),
        shard: meta.shard,
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
    let url = results_url(ctx, &session.endpoint.val, &uploaded)?;
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
        already_uploaded: uploaded.already,
    })
}

/// The batch's page for people: `FLUXLOOP_WEB_URL` or `api.web_url` first,
/// then the link the platform gave, else one derived from the endpoint
/// (the hosted `api.` host's web app is `app.`; elsewhere the same origin).
fn results_url(ctx: &Ctx, endpoint: &str, uploaded: &upload::Uploaded) -> Result<String> {
    let page = format!("/run-batches/{}", uploaded.run_batch_id);
    let configured = match ctx.env.get("FLUXLOOP_WEB_URL")? {
        Some(v) => Some((v.to_string(), Origin::Env("FLUXLOOP_WEB_URL"))),
        None => ctx.config()?.and_then(|c| {
            c.config
                .api
                .web_url
                .clone()
                .filter(|w| !w.is_empty())
                .map(|w| {
                    let origin = Origin::ProjectConfig {
                        path: c.path.clone(),
                        key: "api.web_url",
                    };
                    (w, origin)
                })
        }),
    };
    if let Some((web, origin)) = configured {
        let web = crate::config::resolve::parse_endpoint(&web, &origin)?;
        return Ok(format!("{web}{page}"));
    }
    if let Some(url) = uploaded.url.as_deref().filter(|u| u.starts_with("http")) {
        return Ok(crate::secret::strip_controls(url, false).replace('\n', ""));
    }
    let endpoint = crate::api::Endpoint::parse(endpoint)
        .map_err(|why| Error::config(format!("invalid endpoint {endpoint:?}: {why}"), None))?;
    Ok(format!("{}{page}", web_origin(&endpoint)))
}

/// `https://api.fluxloop.ai` → `https://app.fluxloop.ai`; `api-staging.` →
/// `app-staging.`; any other host (loopback included) keeps its origin.
fn web_origin(endpoint: &crate::api::Endpoint) -> String {
    let origin = endpoint.origin();
    let host = endpoint.host();
    let app = host
        .strip_prefix("api.")
        .map(|rest| format!("app.{rest}"))
        .or_else(|| host.strip_prefix("api-").map(|rest| format!("app-{rest}")));
    match app {
        Some(app) if !endpoint.is_loopback() => origin.replacen(host, &app, 1),
        _ => origin,
    }
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

#[cfg(test)]
mod tests {
    use super::web_origin;
    use crate::api::Endpoint;

    #[test]
    fn the_web_app_of_a_hosted_api_host() {
        for (api, web) in [
            ("https://api.fluxloop.ai", "https://app.fluxloop.ai"),
            (
                "https://api-staging.fluxloop.ai/",
                "https://app-staging.fluxloop.ai",
            ),
            (
                "https://api.fluxloop.ai:8443/v1",
                "https://app.fluxloop.ai:8443",
            ),
            ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
            (
                "https://fluxloop.corp.example",
                "https://fluxloop.corp.example",
            ),
        ] {
            assert_eq!(web_origin(&Endpoint::parse(api).unwrap()), web, "{api}");
        }
    }
}
