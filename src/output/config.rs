//! How `config` reports read.

use super::{table, Human, Style};
use crate::commands::config::{GetReport, ListReport, SetReport, UnsetReport};

impl Human for SetReport {
    fn human(&self, _: &Style) -> String {
        let mut s = format!("Set {} to {} in {}\n", self.key, self.value, self.file);
        if let Some(n) = &self.note {
            s.push_str(n);
            s.push('\n');
        }
        s
    }
}

impl Human for UnsetReport {
    fn human(&self, _: &Style) -> String {
        match &self.removed {
            Some(v) => format!(
                "Removed {}{} ({v}) from {}\n",
                self.key, self.scope, self.file
            ),
            None => format!(
                "{}{} was not set in {}; nothing to do\n",
                self.key, self.scope, self.file
            ),
        }
    }
}

impl Human for GetReport {
    fn human(&self, _: &Style) -> String {
        self.setting.value.clone().unwrap_or_default()
    }

    fn quiet(&self, style: &Style) -> String {
        self.human(style)
    }
}

impl Human for ListReport {
    fn human(&self, style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .settings
            .iter()
            .map(|s| {
                vec![
                    s.key.to_string(),
                    s.value.clone().unwrap_or_else(|| "(not set)".into()),
                    style.dim(&s.origin),
                ]
            })
            .collect();
        table(&["SETTING", "VALUE", "ORIGIN"], &rows)
    }
}
