//! How `report --merge` is shown.

use crate::commands::report::merge::Merged;
use crate::output::{Human, Style};

/// `PASSED S: 10 of 10 runs passed, merged from 2 result directories`.
fn verdict(m: &Merged, style: &Style) -> String {
    let verdict = if m.failed == 0 {
        style.green("PASSED")
    } else {
        style.red("FAILED")
    };
    format!(
        "{verdict} {}: {} of {} runs passed, merged from {} result directories\n",
        m.scenario, m.passed, m.total, m.merged
    )
}

impl Human for Merged {
    fn quiet(&self, style: &Style) -> String {
        verdict(self, style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = verdict(self, style);
        if self.duplicates > 0 {
            s.push_str(&format!(
                "{} run{} found in more than one directory, kept once\n",
                self.duplicates,
                if self.duplicates == 1 { "" } else { "s" }
            ));
        }
        s.push_str(&format!("\nResults: {}\n", self.shown_dir));
        s
    }
}
