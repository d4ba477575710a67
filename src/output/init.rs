//! How the `init` report is shown.

use crate::commands::init::{Action, InitReport};
use crate::output::{Human, Style};

impl Human for InitReport {
    fn human(&self, s: &Style) -> String {
        let mut out = String::new();
        for f in &self.files {
            let verb = match f.action {
                Action::Created => s.green("created"),
                Action::Overwrote => s.yellow("overwrote"),
                Action::Appended => s.green("appended to"),
                Action::AddedStage => s.green("added a stage to"),
                Action::Kept => s.dim("kept"),
                Action::Shown => s.yellow("add to"),
            };
            out.push_str(&format!("{verb} {} ({})\n", f.path, f.what));
            if let Some(snippet) = &f.snippet {
                for line in snippet.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        out.push_str(&format!(
            "agent: {} ({})\nnext: fluxloop doctor, then fluxloop sync pull && fluxloop test\n",
            self.command.join(" "),
            self.agent
        ));
        out
    }
}
