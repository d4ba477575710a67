//! How the `report` verdicts are shown.

use crate::commands::report::Report;
use crate::output::{Human, Style};

impl Human for Report {
    fn quiet(&self, style: &Style) -> String {
        self.verdict(style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = self.verdict(style);
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
