//! How `sync pull`, `sync upload` and the pull and upload stages of `test`
//! are shown: their reports, the notes and warnings they carry, chunk
//! progress, and the interruption messages of their watchdogs.

use std::path::Path;
use std::sync::Arc;

use crate::ci::GithubFiles;
use crate::job::display_rel;
use crate::job::pull::{ListingNote, PullReport};
use crate::job::upload::{TraceCheck, UploadProgress, UploadReport};
use crate::output::{github, plural, Human, Output, Style};
use crate::results;
use crate::signals::StopAtOnce;

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

/// Said before the download when the platform refused a listing.
pub(crate) fn pull_note(out: &Output, note: &ListingNote) {
    out.info(&match note {
        ListingNote::PreviousBundle { scenario, bundle } => format!(
            "note: the platform lists no scenarios to this credential; pulling the bundle of the previous pull of {scenario} ({bundle})"
        ),
        ListingNote::NeverPulled { scenario } => format!(
            "note: the platform lists no scenarios to this credential and {scenario} was never pulled here; the platform picks the newest bundle of the key's project"
        ),
    });
}

/// The warning a pull that replaced local edits gives.
pub(crate) fn pull_warnings(out: &Output, report: &PullReport) {
    if !report.overwritten.is_empty() {
        out.warn(&format!(
            "replaced local edits to {}",
            report.overwritten.join(", ")
        ));
    }
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

/// Chunk progress on stderr, from the second chunk on (or a first one that
/// is full): a small upload is one line at the end.
pub(crate) struct ChunkLines<'a>(pub(crate) &'a Output);

impl UploadProgress for ChunkLines<'_> {
    fn chunk(&mut self, sent: usize, chunks: usize) {
        if chunks > 1 || sent >= crate::upload::CHUNK {
            self.0.info(&format!(
                "Uploaded {sent} runs ({chunks} chunk{})",
                if chunks == 1 { "" } else { "s" }
            ));
        }
    }
}

/// The warnings of a trace check: lines left out, a run that did not finish.
pub(crate) fn trace_warnings(out: &Output, root: &Path, dir: &Path, check: &TraceCheck) {
    let shown = &check.shown;
    if !check.invalid.is_empty() {
        out.warn(&format!(
            "skipped {} of {shown} that {} (--skip-invalid): {}",
            plural(check.invalid.len(), "line", "lines"),
            if check.invalid.len() == 1 {
                "is not a run record"
            } else {
                "are not run records"
            },
            crate::result_dir::line_list(&check.invalid),
        ));
    }
    if let Some(n) = check.torn_last {
        out.warn(&format!(
            "skipped the cut-off last line {n} of {shown} (a run interrupted while it was written)"
        ));
    }
    if check.unfinished {
        out.warn(&format!(
            "the run that wrote {} did not finish (was it killed?); uploading the runs it recorded",
            display_rel(root, dir)
        ));
    }
}

/// After an upload: the step outputs under GitHub Actions, and the warning
/// about transcripts shortened to fit a request.
pub(crate) fn upload_done(
    out: &Output,
    github: Option<&GithubFiles>,
    root: &Path,
    report: &UploadReport,
) {
    if let Some(path) = github.and_then(|g| g.output.as_deref()) {
        let text = github::outputs(&[
            ("run-batch-id", report.run_batch_id.clone()),
            ("run-batch-url", report.url.clone()),
        ]);
        github::append_or_warn(out, "GITHUB_OUTPUT", path, &text);
    }
    if report.truncated_runs > 0 {
        out.warn(&format!(
            "{} too large for one request: its transcript was shortened in the upload (marked \"truncated\": true); {} keeps it whole",
            plural(report.truncated_runs, "run was", "runs were"),
            display_rel(root, &report.result_dir.join(results::TRACE))
        ));
    }
}

/// Ends a pull at once on SIGINT/SIGTERM: pulled/ is swapped in whole, so
/// there is nothing to finish or undo.
pub(crate) fn pull_watchdog(out: &Arc<Output>) -> StopAtOnce {
    let out = Arc::clone(out);
    StopAtOnce::new(move |sig| {
        out.warn(&format!(
            "interrupted by {sig} while pulling; pulled/ is left as it was or holds the new bundle whole"
        ))
    })
}

/// Ends an upload at once on SIGINT/SIGTERM with the command that resumes
/// it (the upload state is saved after each chunk, so nothing is sent twice).
pub(crate) fn upload_watchdog(
    out: &Arc<Output>,
    root: &Path,
    cwd: &Path,
    dir: &Path,
) -> StopAtOnce {
    let out = Arc::clone(out);
    let message = format!(
        "the results are kept in {}; resume with `fluxloop sync upload --result-dir {}`",
        display_rel(root, dir),
        display_rel(cwd, dir)
    );
    StopAtOnce::new(move |sig| {
        out.warn(&format!("interrupted by {sig} while uploading; {message}"))
    })
}
