//! `sync pull` and `sync upload` (CLI.md §4, §5; PLATFORM-API §4, §5).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::auth::login::{self, Session};
use crate::auth::scope::{self, Need};
use crate::cli::{SyncCommand, UploadArgs};
use crate::config::project::limits::{self, Shard};
use crate::config::Origin;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::job;
use crate::output::{self, github, Human, Outcome, Style};
use crate::signals::StopAtOnce;
use crate::{ci, pulled, results, signals, upload};

pub(crate) fn run(ctx: &Ctx, cmd: SyncCommand) -> Result<Outcome> {
    let _caught = signals::Caught::new();
    match cmd {
        SyncCommand::Pull(args) => {
            let _stop = pull_watchdog(ctx);
            let session = login::session(ctx)?;
            scope::require(ctx, &session.client, &[Need::Read])?;
            let root = ctx.workspace_root()?;
            let input = PullSettings {
                scenario: scenario_setting(ctx, args.scenario.as_deref())?,
                project_id: known_project(ctx, args.project_id.as_deref())?,
                bundle_version_id: args.bundle_version_id.clone(),
                keep_local: args.keep_local,
            };
            let report = pull(ctx, &session.client, &root, input)?;
            if !report.up_to_date {
                ctx.out
                    .info(&format!("Wrote {}", display_rel(&root, &report.dir)));
            }
            Ok(Outcome::ok(report))
        }
        SyncCommand::Upload(args) => upload_command(ctx, &args),
    }
}

/// The project named by flag, `fluxloop.yaml` or `.fluxloop/project.json`.
pub(crate) fn known_project(ctx: &Ctx, flag: Option<&str>) -> Result<Option<String>> {
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

/// The settings of a pull, as `sync pull` and `test` resolve them.
pub(crate) struct PullSettings {
    pub(crate) scenario: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) bundle_version_id: Option<String>,
    pub(crate) keep_local: bool,
}

/// Runs the pull stage, showing its note and warnings as they come.
pub(crate) fn pull(
    ctx: &Ctx,
    client: &crate::api::Client,
    root: &Path,
    settings: PullSettings,
) -> Result<job::pull::PullReport> {
    let confirm = |question: &str| ctx.confirm(question);
    let input = job::pull::PullInput {
        root,
        scenario: settings.scenario,
        project_id: settings.project_id,
        bundle_version_id: settings.bundle_version_id,
        edits: job::pull::Edits {
            keep_local: settings.keep_local,
            overwrite: ctx.globals.yes,
            confirm: ctx.can_prompt().then_some(&confirm),
        },
    };
    let report = job::pull::pull(client, &input, &|note| {
        output::sync::pull_note(&ctx.out, note)
    })?;
    output::sync::pull_warnings(&ctx.out, &report);
    Ok(report)
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

pub(crate) use crate::job::display_rel;

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
        batch_key: s("batch_key"),
        shard: summary.as_ref().and_then(|v| {
            let n = |k: &str| v.pointer(&format!("/shard/{k}")).and_then(Value::as_u64);
            limits::shard_of(n("index")?, n("total")?).ok()
        }),
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
