//! A snapshot of the process environment, so resolution is a pure function of
//! its inputs and tests never mutate the real environment.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Variables that hold a credential the CLI reads, or could mint one (the
/// GitHub Actions OIDC request pair). The agent never inherits them: it is
/// code under test, and a prompt-injected agent would print them. A value
/// the agent does need is passed on purpose with `runner.env`.
pub(crate) const CREDENTIAL_VARS: &[&str] = &[
    "FLUXLOOP_API_KEY",
    "FLUXLOOP_SYNC_API_KEY",
    "FLUXLOOP_TOKEN",
    "FLUXLOOP_ID_TOKEN",
    "FLUXLOOP_OIDC_TOKEN",
    "FLUXLOOP_OIDC_TOKEN_FILE",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
];

/// The environment variables the CLI was started with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    pub(crate) fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        }
    }

    /// Present with an empty value: CI systems export a missing secret so.
    pub(crate) fn is_set_but_empty(&self, name: &str) -> bool {
        self.vars
            .get(OsStr::new(name))
            .is_some_and(|v| v.is_empty())
    }

    /// The raw value; empty values count as unset, as CI systems export
    /// missing secrets as empty strings.
    pub(crate) fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// The value as UTF-8; invalid UTF-8 is a configuration error naming the variable.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>> {
        match self.get_os(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).ok_or_else(|| {
                Error::config(
                    format!("environment variable {name} is not valid UTF-8"),
                    Some(format!("unset {name} or set it to a UTF-8 value")),
                )
            }),
        }
    }

    /// The value, or `None` where unset or not valid UTF-8 (for optional hints
    /// such as CI detection, where a bad value should not stop the command).
    pub(crate) fn get_lossy(&self, name: &str) -> Option<&str> {
        self.get_os(name).and_then(OsStr::to_str)
    }

    /// True where the variable is set to a truthy value (`true`, `1`, `yes`).
    pub(crate) fn is_true(&self, name: &str) -> bool {
        self.get_lossy(name).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    }

    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        self.get_os(name).map(PathBuf::from)
    }

    /// `$FLUXLOOP_HOME`, else `~/.fluxloop`.
    pub(crate) fn fluxloop_home(&self) -> Result<PathBuf> {
        if let Some(home) = self.path("FLUXLOOP_HOME") {
            return Ok(home);
        }
        match self.path("HOME") {
            Some(home) => Ok(home.join(".fluxloop")),
            None => Err(Error::config(
                "cannot find the home directory: neither FLUXLOOP_HOME nor HOME is set",
                Some("set FLUXLOOP_HOME to a directory for fluxloop's credentials".into()),
            )),
        }
    }

    /// Expands a leading `~/` against `$HOME`.
    pub(crate) fn expand_tilde(&self, path: &str) -> PathBuf {
        if path == "~" {
            if let Some(home) = self.path("HOME") {
                return home;
            }
        }
        if let Some(rest) = path.strip_prefix("~/") {
            if let Some(home) = self.path("HOME") {
                return home.join(rest);
            }
        }
        PathBuf::from(path)
    }
}
