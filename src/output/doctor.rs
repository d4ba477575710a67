//! How the `doctor` report is shown.

use crate::commands::doctor::{DoctorReport, Status};
use crate::output::{Human, Style};

impl Human for DoctorReport {
    fn human(&self, s: &Style) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Ok => s.green("✓"),
                Status::Fail => s.red("✗"),
                Status::Skip => s.dim("-"),
            };
            out.push_str(&format!("{mark} {:<11} {}\n", c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix: {fix}\n"));
            }
        }
        out
    }
}
