//! How `report` is shown: its verdict, and under GitHub Actions the job
//! summary of the whole batch.

use crate::ci::GithubFiles;
use crate::commands::report::Report;
use crate::output::{github, Human, Output, Style};
use crate::results;

/// `PASSED run batch B: 10 of 10 runs passed from 2 shards`.
fn verdict(r: &Report, style: &Style) -> String {
    let verdict = if r.failed == 0 {
        style.green("PASSED")
    } else {
        style.red("FAILED")
    };
    let shards = r
        .shards
        .as_ref()
        .and_then(|s| s["total"].as_u64())
        .map(|n| format!(" from {n} shards"))
        .unwrap_or_default();
    format!(
        "{verdict} run batch {}: {} of {} runs passed{shards}\n",
        r.run_batch_id, r.passed, r.total
    )
}

impl Human for Report {
    fn quiet(&self, style: &Style) -> String {
        verdict(self, style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = verdict(self, style);
        if !self.failures.is_empty() {
            s.push_str("\nFailed runs:\n");
            for f in &self.failures {
                s.push_str(&format!("  {} {f}\n", style.red("✗")));
            }
            if self.failed > self.failures.len() {
                s.push_str(&format!(
                    "  … and {} more\n",
                    self.failed - self.failures.len()
                ));
            }
        }
        s.push_str(&format!("\nJUnit: {}\n", self.junit.display()));
        s
    }
}

/// The batch's Markdown job summary and the step outputs (the action's
/// `run-batch-id`, `total`, `passed`, `failed` in `mode: report`), under
/// GitHub Actions.
pub(crate) fn step_summary(out: &Output, github: Option<&GithubFiles>, r: &Report) {
    if let Some(path) = github.and_then(|g| g.output.as_deref()) {
        let text = github::outputs(&[
            ("run-batch-id", r.run_batch_id.clone()),
            ("total", r.total.to_string()),
            ("passed", r.passed.to_string()),
            ("failed", r.failed.to_string()),
        ]);
        github::append_or_warn(out, "GITHUB_OUTPUT", path, &text);
    }
    let Some(path) = github.and_then(|g| g.step_summary.as_deref()) else {
        return;
    };
    let mut md = format!(
        "### {} FluxLoop run batch {}\n\n| Runs | Passed | Failed |\n|---:|---:|---:|\n| {} | {} | {} |\n",
        if r.failed == 0 { "✅" } else { "❌" },
        github::md_cell(&r.run_batch_id),
        r.total,
        r.passed,
        r.failed
    );
    if !r.failures.is_empty() {
        md.push_str("\n**Failed runs**\n\n");
        for f in &r.failures {
            md.push_str(&format!(
                "- {}\n",
                github::md_cell(&results::excerpt(f, 300))
            ));
        }
    }
    md.push('\n');
    github::append_or_warn(out, "GITHUB_STEP_SUMMARY", path, &md);
}
