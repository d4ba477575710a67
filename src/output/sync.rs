//! How `sync pull` and the pull stage of `test` are shown: the report,
//! and the note and warning it carries.

use crate::job::pull::{ListingNote, PullReport};
use crate::output::{plural, Human, Output, Style};

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
