//! How `test` is shown: the run's progress and failure lines on stderr, the
//! [`TestReport`] and the previews that run nothing, and under GitHub
//! Actions the annotations, the job summary and the step outputs.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::ci::GithubFiles;
use crate::job::display_rel;
use crate::job::report::{TestReport, Threshold};
use crate::job::run::RunProgress;
use crate::output::{github, table, Human, Output, Style};
use crate::results::{self, human_ms, Tally, TraceRecord};

/// Failed runs annotated under GitHub Actions (it shows at most 10 per step).
const MAX_ANNOTATIONS: usize = 10;
/// Failed runs printed as they happen.
const MAX_FAILURE_LINES: usize = 20;

/// `Running 10 runs (10 inputs × 1 iteration, 2 at a time, timeout 5m) with `agent``.
pub(crate) fn announce(
    out: &Output,
    total: usize,
    shape: &str,
    parallel: u32,
    timeout: Duration,
    command: &str,
) {
    out.info(&format!(
        "Running {total} run{} ({shape}, {} at a time, timeout {}) with `{command}`",
        if total == 1 { "" } else { "s" },
        parallel.min(total as u32),
        human_ms(timeout.as_millis() as u64),
    ));
}

/// Progress of the run stage on stderr: a rewritten line on a terminal,
/// else a line every 10 seconds; the first failures as they happen.
pub(crate) struct RunLines<'a> {
    out: &'a Output,
    tty: bool,
    total: usize,
    failure_lines: usize,
    clock: Instant,
    last_line: Instant,
}

impl<'a> RunLines<'a> {
    pub(crate) fn new(out: &'a Output, total: usize) -> RunLines<'a> {
        RunLines {
            out,
            tty: out.stderr_tty && !out.quiet,
            total,
            failure_lines: 0,
            clock: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Ends the progress line once no run is left.
    pub(crate) fn done(&self) {
        if self.tty {
            self.out.progress_done();
        }
    }

    fn failure(&mut self, record: &TraceRecord) {
        self.failure_lines += 1;
        self.done();
        self.out.info(&format!(
            "{} {}: {}",
            self.out.err_style.red("FAIL"),
            record.label(),
            record.error_message().unwrap_or("")
        ));
        if self.failure_lines == MAX_FAILURE_LINES {
            self.out
                .info("(further failures are not shown here; see errors.json)");
        }
    }
}

impl RunProgress for RunLines<'_> {
    fn finished(&mut self, record: &TraceRecord, tally: &Tally) {
        if !record.success && self.failure_lines < MAX_FAILURE_LINES {
            self.failure(record);
        }
        let line = format!(
            "[{}/{}] {} passed, {} failed, {:.0}s",
            tally.total,
            self.total,
            tally.success,
            tally.failure,
            self.clock.elapsed().as_secs_f64()
        );
        if self.tty {
            self.out.progress(&line);
        } else if self.last_line.elapsed() >= Duration::from_secs(10) && tally.total < self.total {
            self.out.info(&line);
            self.last_line = Instant::now();
        }
    }
}

/// A run stopped by a signal: where what finished is, and how to send it.
pub(crate) fn stopped(
    out: &Output,
    done: usize,
    total: usize,
    root: &Path,
    cwd: &Path,
    dir: &Path,
) {
    out.warn(&format!(
        "stopped after {done} of {total} runs; finished runs are in {}; upload them with `fluxloop sync upload --result-dir {}`",
        display_rel(root, dir),
        display_rel(cwd, dir)
    ));
}

/// An upload that failed after the runs: the results are safe on disk.
pub(crate) fn kept_results(out: &Output, root: &Path, cwd: &Path, dir: &Path) {
    out.warn(&format!(
        "the results are kept in {}; upload them later with `fluxloop sync upload --result-dir {}`",
        display_rel(root, dir),
        display_rel(cwd, dir)
    ));
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// `Pass rate threshold 90.0%: met`.
fn threshold_line(t: &Threshold) -> String {
    format!(
        "Pass rate threshold {}: {}\n",
        percent(t.pass_rate),
        if t.met { "met" } else { "not met" }
    )
}

/// `1 run`, `3 runs`.
fn runs(n: usize) -> String {
    if n == 1 {
        "1 run".to_string()
    } else {
        format!("{n} runs")
    }
}

/// `PASSED support-bot: 10 of 10 runs passed`.
fn verdict_line(r: &TestReport, style: &Style) -> String {
    let verdict = if r.passing() {
        style.green("PASSED")
    } else {
        style.red("FAILED")
    };
    format!(
        "{verdict} {}: {} of {} runs passed\n",
        r.scenario, r.passed, r.total
    )
}

/// The lines for flaky and skipped runs and the threshold, when there are any.
fn extra_counts(r: &TestReport) -> String {
    let mut s = String::new();
    if r.flaky > 0 {
        s.push_str(&format!(
            "\nFlaky: {} passed only on a retry (flakyFailure in junit.xml)\n",
            runs(r.flaky)
        ));
    }
    if r.skipped > 0 {
        s.push_str(&format!(
            "\nSkipped: {} not started, as --max-failures was reached\n",
            runs(r.skipped)
        ));
    }
    if let Some(t) = &r.threshold {
        s.push('\n');
        s.push_str(&threshold_line(t));
    }
    s
}

/// The failed runs, or under GitHub Actions a pointer to where they are.
fn failure_lines(r: &TestReport, style: &Style) -> String {
    if r.failures.is_empty() {
        return String::new();
    }
    if r.github {
        // Under GitHub Actions each failure is an annotation and a row of
        // the job summary already; once more here would be noise.
        return format!(
            "\n{} failed: see the annotations and the job summary\n",
            runs(r.failed)
        );
    }
    let mut s = "\nFailed runs:\n".to_string();
    for b in &r.failures {
        s.push_str(&format!(
            "  {} {}\n      {}\n",
            style.red("✗"),
            b.label,
            b.error.as_deref().unwrap_or("")
        ));
    }
    if r.failed > r.failures.len() {
        s.push_str(&format!(
            "  … and {} more (see errors.json)\n",
            r.failed - r.failures.len()
        ));
    }
    s
}

impl Human for TestReport {
    fn quiet(&self, style: &Style) -> String {
        verdict_line(self, style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = verdict_line(self, style);
        s.push('\n');
        s.push_str(&table(
            &["RUNS", "PASSED", "FAILED", "SUCCESS RATE", "TIME"],
            &[vec![
                self.total.to_string(),
                self.passed.to_string(),
                self.failed.to_string(),
                percent(self.success_rate),
                human_ms(self.wall_time_ms),
            ]],
        ));
        s.push_str(&extra_counts(self));
        if !self.slowest.is_empty() && self.total > 1 {
            s.push_str("\nSlowest runs:\n");
            for b in &self.slowest {
                s.push_str(&format!("  {:>8}  {}\n", human_ms(b.duration_ms), b.label));
            }
        }
        s.push_str(&failure_lines(self, style));
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

/// One `::error::` per failed run (capped), and a warning for the rest.
/// The details are in the job summary; repeating them in a log group
/// would show every failure once more.
pub(crate) fn annotations(out: &Output, tally: &Tally) {
    if !out.github || tally.failed.is_empty() {
        return;
    }
    for b in tally.failed.iter().take(MAX_ANNOTATIONS) {
        let message = format!("{}: {}", b.label, b.error.as_deref().unwrap_or("failed"));
        out.workflow_command(&github::error_annotation("fluxloop run failed", &message));
    }
    if tally.failure > MAX_ANNOTATIONS {
        out.workflow_command(&format!(
            "::warning::{}",
            github::escape_data(&format!(
                "{} more failed runs are not annotated; see errors.json and junit.xml",
                tally.failure - MAX_ANNOTATIONS
            ))
        ));
    }
}

/// The step summary's flaky and skipped counts and threshold verdict.
fn github_extra(r: &TestReport) -> String {
    let mut md = String::new();
    if r.flaky > 0 {
        md.push_str(&format!(
            "\n**Flaky:** {} passed only on a retry.\n",
            r.flaky
        ));
    }
    if r.skipped > 0 {
        md.push_str(&format!(
            "\n**Skipped:** {} not started, as `--max-failures` was reached.\n",
            r.skipped
        ));
    }
    if let Some(t) = &r.threshold {
        md.push('\n');
        md.push_str(&threshold_line(t));
    }
    md
}

/// The Markdown job summary of a test.
fn summary_markdown(r: &TestReport) -> String {
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
    md.push_str(&github_extra(r));
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
    md
}

/// The job summary and the step outputs, under GitHub Actions.
pub(crate) fn github_summary(out: &Output, github: Option<&GithubFiles>, r: &TestReport) {
    let Some(files) = github else {
        return;
    };
    if let Some(path) = &files.step_summary {
        github::append_or_warn(out, "GITHUB_STEP_SUMMARY", path, &summary_markdown(r));
    }
    if let Some(path) = &files.output {
        let text = github::outputs(&[
            ("total", r.total.to_string()),
            ("failed", r.failed.to_string()),
            ("passed", r.passed.to_string()),
            ("flaky", r.flaky.to_string()),
            ("skipped", r.skipped.to_string()),
        ]);
        github::append_or_warn(out, "GITHUB_OUTPUT", path, &text);
    }
}
