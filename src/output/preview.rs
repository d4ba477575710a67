//! How the `test` previews that run nothing (`--list`, `--dry-run`, nothing to rerun) are shown.

use crate::commands::test::plan::{DryRunReport, ListReport, ListedRun, NothingToRerun};
use crate::output::{Human, Style};
use crate::results::{excerpt, human_ms};

impl Human for ListReport {
    fn human(&self, _style: &Style) -> String {
        list_lines(&self.runs)
    }
}

impl Human for DryRunReport {
    fn human(&self, _style: &Style) -> String {
        let n = self.runs.len();
        let mut s = format!(
            "Dry run of {}: {n} run{}, nothing is run or uploaded\n\n",
            self.scenario,
            if n == 1 { "" } else { "s" }
        );
        let mut row = |k: &str, v: String| s.push_str(&format!("  {k:<13}{v}\n"));
        row("command", self.command.clone());
        row("parallel", self.parallel.to_string());
        row("timeout", human_ms(self.timeout_ms));
        row("retries", self.retries.to_string());
        row(
            "rate",
            self.rate.clone().unwrap_or_else(|| "unlimited".into()),
        );
        row(
            "max failures",
            self.max_failures
                .map_or_else(|| "unlimited".into(), |m| m.to_string()),
        );
        row(
            "pass rate",
            self.pass_rate
                .map_or_else(|| "every run must pass".into(), percent),
        );
        row("results", self.result_dir.clone());
        match &self.upload {
            Some(u) => {
                row(
                    "upload to",
                    format!("{} ({})", u.endpoint, u.endpoint_origin),
                );
                row(
                    "credential",
                    format!("{} ({})", u.credential, u.credential_origin),
                );
            }
            None => row("upload", "no (--skip-upload)".into()),
        }
        s.push_str("\nRuns (input id, iteration, input):\n");
        s.push_str(&list_lines(&self.runs));
        s
    }
}

impl Human for NothingToRerun {
    fn human(&self, _style: &Style) -> String {
        format!(
            "Nothing to rerun: no run of {} failed in {}\n",
            self.scenario, self.result_dir
        )
    }
}

fn list_lines(runs: &[ListedRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{}\t{}\t{}\n",
                r.input_item_id.as_deref().unwrap_or("-"),
                r.iteration,
                excerpt(&r.input, 60)
            )
        })
        .collect()
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}
