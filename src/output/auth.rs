//! How `auth` reports read.

use time::OffsetDateTime;

use super::{Human, Style};
use crate::auth::login;
use crate::commands::auth::{
    LoginReport, LogoutReport, RefreshReport, StatusReport, TokenReport, Verdict,
};

impl Human for TokenReport {
    fn human(&self, _: &Style) -> String {
        self.token.clone()
    }
}

impl Human for LoginReport {
    fn human(&self, _: &Style) -> String {
        match self {
            LoginReport::AlreadyLoggedIn {
                profile,
                user_email,
                endpoint,
            } => format!(
                "Already logged in as {} (profile {profile}, {endpoint}).\nRun `fluxloop auth login --force` to log in again.\n",
                user_email.as_deref().unwrap_or("unknown user")
            ),
            LoginReport::Authenticated {
                user_email,
                profile,
                endpoint,
                credentials_file,
                shadowed_by,
                ..
            } => {
                let mut text = format!(
                    "✅ Successfully authenticated as {}\nProfile {profile} ({endpoint}) stored in {credentials_file}\n",
                    user_email.as_deref().unwrap_or("unknown user")
                );
                if let Some(origin) = shadowed_by {
                    text.push_str(&format!(
                        "note: {origin} takes precedence over this login while it is set\n"
                    ));
                }
                text
            }
        }
    }
}

impl Human for RefreshReport {
    fn human(&self, _: &Style) -> String {
        format!(
            "Refreshed the login of profile {} ({}); the new token expires at {}\n",
            self.profile,
            self.user_email.as_deref().unwrap_or("unknown user"),
            self.expires_at.as_deref().unwrap_or("an unknown time")
        )
    }
}

impl Human for LogoutReport {
    fn human(&self, _: &Style) -> String {
        let mut text = String::new();
        if let Some(asked) = &self.asked {
            text.push_str(&format!("Not logged in ({asked}); nothing to remove\n"));
        }
        for r in &self.profiles {
            match &r.not_revoked_because {
                None => text.push_str(&format!(
                    "Logged out of profile {}: the platform ended the session\n",
                    r.profile
                )),
                Some(why) => text.push_str(&format!(
                    "Logged out of profile {} on this machine; the session was NOT ended on the platform ({why}), so its tokens work until they expire\n",
                    r.profile
                )),
            }
        }
        for var in &self.still_set {
            text.push_str(&format!(
                "note: {var} is still set and still authenticates\n"
            ));
        }
        text
    }
}

impl Human for StatusReport {
    fn human(&self, s: &Style) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{:<12} {v}\n", format!("{k}:")));
        line("Credential", format!("{} ({})", self.credential, self.kind));
        match &self.oidc {
            Some(o) => line("From", o.summary.clone()),
            None => line("From", self.origin.clone()),
        }
        for sh in &self.shadowed {
            line("Shadows", s.dim(sh));
        }
        let from = |origin: &str| s.dim(&format!("(from {origin})"));
        line(
            "Endpoint",
            format!("{} {}", self.endpoint, from(&self.endpoint_origin)),
        );
        line(
            "Profile",
            format!("{} {}", self.profile, from(&self.profile_origin)),
        );
        if let Some(email) = &self.user_email {
            line("User", email.clone());
        }
        if let Some(k) = &self.key {
            if let Some(name) = &k.name {
                line(
                    "Key name",
                    format!("{name} (id {})", k.id.as_deref().unwrap_or("?")),
                );
            }
            for (label, v) in [
                ("Type", &k.key_type),
                ("Scope", &k.scope),
                ("Project", &k.project_id),
                ("Expires", &k.expires_at),
            ] {
                if let Some(v) = v {
                    line(label, v.clone());
                }
            }
        }
        if let Some(e) = &self.expires_at {
            line("Expires", format!("{e}{}", remaining(e)));
        }
        if self.refreshed {
            line(
                "Refreshed",
                "yes (the stored token was about to expire)".into(),
            );
        }
        let verdict = match self.verdict {
            Verdict::Valid => s.green("✓ valid"),
            Verdict::Expired => s.red("✗ expired"),
            Verdict::Revoked => s.red("✗ revoked"),
            Verdict::Invalid => s.red("✗ not accepted by the platform"),
            Verdict::Unreachable => s.yellow("? platform unreachable"),
        };
        line("Status", verdict);
        if let Some(d) = &self.detail {
            line("Detail", d.clone());
        }
        out
    }
}

/// ` (in 3 h)`, ` (in 12 min)` or ` (expired)`.
fn remaining(expires_at: &str) -> String {
    let Some(t) = login::parse_time(Some(expires_at)) else {
        return String::new();
    };
    let left = t - OffsetDateTime::now_utc();
    if left.is_negative() {
        return " (expired)".into();
    }
    let mins = left.whole_minutes();
    if mins >= 120 {
        format!(" (in {} h)", mins / 60)
    } else {
        format!(" (in {mins} min)")
    }
}
