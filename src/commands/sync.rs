//! `sync pull` and `sync upload` (CLI.md §4, §5; PLATFORM-API §4, §5): read
//! the settings, run the pull or upload stage of [`crate::job`], and hand
//! its report to `output/`.

use std::path::{Path, PathBuf};

use crate::auth::login;
use crate::auth::scope::{self, Need};
use crate::cli::{SyncCommand, UploadArgs};
use crate::config::Origin;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::job::{self, display_rel};
use crate::output::{self, Outcome};
use crate::{ci, pulled, results, signals};

pub(crate) fn run(ctx: &Ctx, cmd: SyncCommand) -> Result<Outcome> {
    let _caught = signals::Caught::new();
    match cmd {
        SyncCommand::Pull(args) => {
            let _stop = output::sync::pull_watchdog(&ctx.out);
            let session = login::session(ctx)?;
            scope::require(ctx, &session.client, &[Need::Read])?;
            let root = ctx.workspace_root()?;
            let input = PullSettings {
                scenario: scenario_setting(ctx)?,
                project_id: known_project(ctx)?,
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

/// The project setting (config/registry.rs): `--project-id`, `project_id`
/// in `fluxloop.yaml`, `.fluxloop/project.json`.
pub(crate) fn known_project(ctx: &Ctx) -> Result<Option<String>> {
    Ok(ctx.settings.text("project_id")?.map(|v| v.val))
}

/// The scenario setting: `--scenario`, else `scenario:` in `fluxloop.yaml`.
pub(crate) fn scenario_setting(ctx: &Ctx) -> Result<Option<String>> {
    Ok(ctx.settings.text("scenario")?.map(|v| v.val))
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

/// `FLUXLOOP_WEB_URL`, else `api.web_url` in `fluxloop.yaml`, unparsed.
pub(crate) fn web_url_setting(ctx: &Ctx) -> Result<Option<(String, Origin)>> {
    Ok(ctx.settings.text("web_url")?.map(|v| (v.val, v.origin)))
}

/// Runs the upload stage of `dir` with the session's client, then shows
/// what it leaves to say (step outputs, shortened transcripts).
pub(crate) fn upload(
    ctx: &Ctx,
    session: &login::Session,
    dir: &Path,
    scenario_hint: Option<&str>,
    skipped_lines: usize,
) -> Result<job::upload::UploadReport> {
    let root = ctx.workspace_root()?;
    let ci = ci::detect(&ctx.env);
    let input = job::upload::UploadInput {
        root: &root,
        dir,
        scenario_hint,
        skipped_lines,
        ci: &ci,
        endpoint: &session.endpoint.val,
        web_url: web_url_setting(ctx)?,
    };
    let report = job::upload::upload(
        &session.client,
        &input,
        &mut output::sync::ChunkLines(&ctx.out),
    )?;
    let github = ci::github_files(&ctx.env);
    output::sync::upload_done(&ctx.out, github.as_ref(), &root, &report);
    Ok(report)
}

/// `--result-dir`, else the newest result directory (of the scenario, if set).
fn result_dir(
    ctx: &Ctx,
    root: &Path,
    args: &UploadArgs,
    scenario: Option<&str>,
) -> Result<PathBuf> {
    if let Some(d) = &args.result_dir {
        let d = ctx.cwd.join(d);
        if !d.join(results::TRACE).is_file() {
            return Err(Error::MissingFile {
                path: d.join(results::TRACE),
                what: "trace file (--result-dir)",
            });
        }
        return Ok(d);
    }
    let under = pulled::results_root(root);
    results::newest_dir(&under, scenario)?.ok_or_else(|| Error::NotFound {
        what: match scenario {
            Some(s) => format!(
                "result directory for scenario {s} under {}",
                under.display()
            ),
            None => format!("result directory under {}", under.display()),
        },
        hint: Some("run `fluxloop test` first, or pass --result-dir DIR".into()),
    })
}

fn upload_command(ctx: &Ctx, args: &UploadArgs) -> Result<Outcome> {
    let scenario = scenario_setting(ctx)?;
    let root = ctx.workspace_root()?;
    let dir = result_dir(ctx, &root, args, scenario.as_deref())?;
    // The directory is checked before any network use.
    let check = job::upload::check(&root, &dir, args.skip_invalid)?;
    output::sync::trace_warnings(&ctx.out, &root, &dir, &check);
    let _stop = output::sync::upload_watchdog(&ctx.out, &root, &ctx.cwd, &dir);
    let session = login::session(ctx)?;
    scope::require(ctx, &session.client, &[Need::Write])?;
    ctx.out
        .info(&format!("Uploading {}", display_rel(&root, &dir)));
    let report = upload(ctx, &session, &dir, scenario.as_deref(), check.skipped())?;
    Ok(Outcome::ok(report))
}
