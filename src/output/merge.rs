//! How `report --merge` is shown.

use crate::commands::report::merge::Merged;
use crate::output::{Human, Style};

impl Human for Merged {
    fn quiet(&self, style: &Style) -> String {
        self.verdict(style)
    }

    fn human(&self, style: &Style) -> String {
        let mut s = self.verdict(style);
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
