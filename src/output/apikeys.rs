//! How the `apikeys` reports are shown.

use time::OffsetDateTime;

use crate::commands::apikeys::{days_since, shown_suffix};
use crate::commands::apikeys::{CreateReport, InfoReport, ListReport, RevokeReport};
use crate::output::{table, thousands, Human, Style};

impl Human for CreateReport {
    fn human(&self, _: &Style) -> String {
        format!("{}\n", self.key)
    }

    fn quiet(&self, style: &Style) -> String {
        self.human(style)
    }
}

impl Human for ListReport {
    fn human(&self, s: &Style) -> String {
        if self.keys.is_empty() {
            return "No API keys in this project. Create one with `fluxloop apikeys create --name NAME`.\n".into();
        }
        let now = OffsetDateTime::now_utc();
        // Fits 100 columns: an id is shown by its first 8 characters, which
        // `info` and `revoke` accept when unique; --json has it whole.
        let rows: Vec<Vec<String>> = self
            .keys
            .iter()
            .map(|k| {
                let r = &k.record;
                let status = if r.revoked_at.is_some() {
                    "revoked".to_string()
                } else if let Some(why) = &k.rotation {
                    s.yellow(&format!("rotate: {why}"))
                } else {
                    "active".to_string()
                };
                let id = r.id.clone().unwrap_or_default();
                vec![
                    id.chars().take(8).collect(),
                    r.name.clone().unwrap_or_default(),
                    shown_suffix(r),
                    r.scope.clone().unwrap_or_default(),
                    ago(days_since(r.last_used_at.as_deref(), now)),
                    thousands(r.usage_count.unwrap_or(0)),
                    status,
                ]
            })
            .collect();
        let mut out = table(
            &["ID", "NAME", "KEY", "SCOPE", "LAST USED", "USES", "STATUS"],
            &rows,
        );
        if self.revoked_hidden > 0 {
            out.push_str(&format!(
                "\n{} revoked key(s) not shown; see them with --all\n",
                self.revoked_hidden
            ));
        }
        let due = self
            .keys
            .iter()
            .filter(|k| k.rotation.is_some() && k.record.revoked_at.is_none())
            .count();
        if due > 0 {
            out.push_str(&format!(
                "\n{due} key(s) due for rotation: create a new key, update your CI secret, then `fluxloop apikeys revoke ID`\n"
            ));
        }
        out
    }
}

impl Human for InfoReport {
    fn human(&self, s: &Style) -> String {
        let r = &self.record;
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{:<13} {v}\n", format!("{k}:")));
        line("Key", self.key.clone());
        if let Some(n) = &r.name {
            line("Name", n.clone());
        }
        if let Some(id) = &r.id {
            line("ID", id.clone());
        }
        if let Some(t) = &r.key_type {
            line("Type", t.clone());
        }
        if let Some(sc) = &r.scope {
            line("Scope", format!("{sc} ({})", scope_meaning(sc)));
        }
        if let Some(p) = &r.project_id {
            line("Project", p.clone());
        }
        if let Some(c) = &r.created_at {
            line("Created", c.clone());
        }
        if self.known {
            line(
                "Last used",
                r.last_used_at.clone().unwrap_or_else(|| "never".into()),
            );
            line(
                "Usage count",
                format!("{} requests", thousands(r.usage_count.unwrap_or(0))),
            );
        }
        if let Some(e) = &r.expires_at {
            line("Expires", e.clone());
        }
        let status = match (self.status, &r.revoked_at) {
            ("active", _) => s.green("active"),
            (other, Some(when)) => s.red(&format!("{other} at {when}")),
            (other, None) if !self.known => s.red(&format!(
                "{other} (the platform tells nothing more to a revoked key; a login or an admin key sees the rest: `fluxloop apikeys info ID`)"
            )),
            (other, None) => s.red(other),
        };
        line("Status", status);
        out
    }
}

impl Human for RevokeReport {
    fn human(&self, _: &Style) -> String {
        if self.already {
            return format!("Key {} was already revoked; nothing to do.\n", self.target);
        }
        let mut s = format!(
            "Revoked key {} (id {}); it stops working now.\n",
            self.record.name.as_deref().unwrap_or(&self.target),
            self.record.id.as_deref().unwrap_or("?")
        );
        if self.was_in_use {
            s.push_str("note: this is the key in effect here; commands using it will now fail\n");
        }
        s
    }
}

fn ago(days: Option<i64>) -> String {
    match days {
        None => "never".into(),
        Some(0) => "today".into(),
        Some(1) => "1 day ago".into(),
        Some(d) => format!("{d} days ago"),
    }
}

fn scope_meaning(scope: &str) -> &'static str {
    match scope {
        "read" => "view scenarios, criteria, results",
        "write" => "upload results, create scenarios",
        "read-write" => "full access to scenarios and results",
        "admin" => "everything, including keys and project settings",
        _ => "",
    }
}
