//! The upload stage: check a result directory's trace, then send its runs
//! to the platform in chunks and say where people see them (PLATFORM-API §5).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::Client;
use crate::ci::CiInfo;
use crate::config::project::limits::Shard;
use crate::config::Origin;
use crate::error::{Error, Result};
use crate::job::display_rel;
use crate::job::stream::{self, Streamed};
use crate::output::plural;
use crate::{pulled, result_dir, results, upload};

/// What an upload needs, resolved by its command.
pub(crate) struct UploadInput<'a> {
    /// The workspace root.
    pub(crate) root: &'a Path,
    /// The result directory.
    pub(crate) dir: &'a Path,
    /// The scenario when the directory's summary does not say.
    pub(crate) scenario_hint: Option<&'a str>,
    /// Trace lines [`check`] left out.
    pub(crate) skipped_lines: usize,
    /// The CI build the batch is attributed to.
    pub(crate) ci: &'a CiInfo,
    /// The endpoint the client talks to.
    pub(crate) endpoint: &'a str,
    /// `FLUXLOOP_WEB_URL` or `api.web_url`, unparsed, with where it came from.
    pub(crate) web_url: Option<(String, Origin)>,
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

/// Hears each chunk the platform stored.
pub(crate) trait UploadProgress {
    /// `sent` runs are stored so far, in `chunks` chunks.
    fn chunk(&mut self, sent: usize, chunks: usize);
}

/// What [`check`] found in a result directory before anything is sent.
#[derive(Debug, Default)]
pub(crate) struct TraceCheck {
    /// The trace file, as shown (relative to the workspace root).
    pub(crate) shown: String,
    /// Lines that are not records, skipped under `--skip-invalid`.
    pub(crate) invalid: Vec<u64>,
    /// The cut-off last line a crash mid-append leaves.
    pub(crate) torn_last: Option<u64>,
    /// The run that wrote the directory did not finish (was it killed?).
    pub(crate) unfinished: bool,
}

impl TraceCheck {
    /// Trace lines the upload leaves out.
    pub(crate) fn skipped(&self) -> usize {
        self.invalid.len() + usize::from(self.torn_last.is_some())
    }
}

/// Stops on trace lines that are not records (they would be lost without a
/// word), unless `skip_invalid`; a torn last line, as a crash leaves, is
/// skipped. A run still going is the user's to settle, not the platform's.
pub(crate) fn check(root: &Path, dir: &Path, skip_invalid: bool) -> Result<TraceCheck> {
    result_dir::ensure_finished(dir)?;
    let scan = result_dir::scan_trace(dir)?;
    let shown = display_rel(root, &dir.join(results::TRACE));
    if !scan.invalid.is_empty() && !skip_invalid {
        let lines = result_dir::line_list(&scan.invalid);
        let (what, them) = if scan.invalid.len() == 1 {
            (format!("line {lines} is not a run record"), "it")
        } else {
            (format!("lines {lines} are not run records"), "them")
        };
        return Err(Error::config(
            format!("{shown}: {what}"),
            Some(format!(
                "repair or remove {them}, or pass --skip-invalid to upload the other {}",
                plural(scan.records, "run", "runs")
            )),
        ));
    }
    Ok(TraceCheck {
        shown,
        invalid: scan.invalid,
        torn_last: scan.torn_last,
        unfinished: result_meta(dir).complete == Some(false),
    })
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

/// The bundle the runs of `dir` were made with: its summary's, else the
/// pulled scenario's.
fn bundle_of(input: &UploadInput<'_>, meta: &ResultMeta) -> Result<String> {
    if let Some(b) = meta.bundle_version_id.clone() {
        return Ok(b);
    }
    let scenario = meta
        .scenario
        .clone()
        .or_else(|| input.scenario_hint.map(String::from))
        .or_else(|| {
            input
                .dir
                .file_name()
                .and_then(|n| results::parse_dir_name(&n.to_string_lossy()))
                .map(|(s, _, _)| s)
        });
    scenario
        .as_deref()
        .and_then(|s| {
            pulled::read_meta(&pulled::pulled_dir(input.root, s))
                .ok()
                .flatten()
        })
        .and_then(|m| pulled::bundle_version_id(&m))
        .ok_or_else(|| {
            Error::config(
                format!(
                    "no bundle version recorded for the results in {}",
                    input.dir.display()
                ),
                Some("run `fluxloop sync pull` for the scenario first".into()),
            )
        })
}

/// Uploads the result directory of `input` with `client`.
pub(crate) fn upload(
    client: &Client,
    input: &UploadInput<'_>,
    progress: &mut dyn UploadProgress,
) -> Result<UploadReport> {
    send(input, progress, |info, chunk| {
        upload::upload(client, input.dir, info, chunk)
    })
}

/// Ends the streaming upload of `input`'s directory (`test` with upload
/// on): the runs streaming left, then the last chunk.
pub(crate) fn upload_streamed(
    client: &Client,
    input: &UploadInput<'_>,
    streamed: Streamed,
    progress: &mut dyn UploadProgress,
) -> Result<UploadReport> {
    send(input, progress, |info, chunk| {
        stream::finish(streamed, client, input.dir, info, chunk)
    })
}

/// The batch as `input`'s directory records it, sent by `how`.
fn send(
    input: &UploadInput<'_>,
    progress: &mut dyn UploadProgress,
    how: impl FnOnce(&upload::BatchInfo<'_>, &mut dyn FnMut(usize, usize)) -> Result<upload::Uploaded>,
) -> Result<UploadReport> {
    let meta = result_meta(input.dir);
    let bundle = bundle_of(input, &meta)?;
    let now = results::rfc3339(time::OffsetDateTime::now_utc());
    let info = upload::BatchInfo {
        bundle_version_id: &bundle,
        started_at: meta.started_at.as_deref().unwrap_or(&now),
        completed_at: meta.completed_at.as_deref().unwrap_or(&now),
        ci: input.ci,
        batch_key: meta.batch_key.as_deref(),
        shard: meta.shard,
    };
    let uploaded = how(&info, &mut |sent, chunks| progress.chunk(sent, chunks))?;
    let url = results_url(input, &uploaded)?;
    Ok(UploadReport {
        run_batch_id: uploaded.run_batch_id,
        runs: uploaded.runs,
        chunks: uploaded.chunks,
        skipped_lines: input.skipped_lines,
        truncated_runs: uploaded.truncated,
        url,
        result_dir: input.dir.to_path_buf(),
        already_uploaded: uploaded.already,
    })
}

/// The batch's page for people: the configured web URL first, then the
/// link the platform gave, else one derived from the endpoint (the hosted
/// `api.` host's web app is `app.`; elsewhere the same origin).
fn results_url(input: &UploadInput<'_>, uploaded: &upload::Uploaded) -> Result<String> {
    let page = format!("/run-batches/{}", uploaded.run_batch_id);
    if let Some((web, origin)) = &input.web_url {
        let web = crate::config::resolve::parse_endpoint(web, origin)?;
        return Ok(format!("{web}{page}"));
    }
    if let Some(url) = uploaded.url.as_deref().filter(|u| u.starts_with("http")) {
        return Ok(crate::secret::strip_controls(url, false).replace('\n', ""));
    }
    let endpoint = input.endpoint;
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
