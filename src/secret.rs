//! Secrets (keys and tokens) and the one way to show them: masked.
//!
//! A `Secret` has no `Display`, and its `Debug` prints `Secret(REDACTED)`, so a
//! secret can only reach output through [`mask`] or deliberately via
//! [`Secret::expose`] (the Authorization header, the credentials file, and
//! `apikeys create`'s single print of a new key).

use std::fmt;

/// A key or token that must never be printed whole.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value; call only where it must leave the process.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The value as it may be shown: prefix + `****` + last 4.
    pub(crate) fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// Prefixes that identify what a secret is without giving any of it away.
const KNOWN_PREFIXES: &[&str] = &["flx_refresh_", "flx_api_", "flx_sa_", "flx_at_", "flx_"];

/// Masks a secret as prefix + `****` + last 4 characters (CLI.md §3).
///
/// Short values show nothing of themselves: with fewer than 16 characters the
/// last four would be a quarter of the secret or more.
pub(crate) fn mask(value: &str) -> String {
    let prefix = KNOWN_PREFIXES
        .iter()
        .find(|p| value.starts_with(*p))
        .copied()
        .unwrap_or("");
    let rest = &value[prefix.len()..];
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() < 16 {
        return format!("{prefix}****");
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_prefix_and_last_four() {
        assert_eq!(
            mask("flx_api_abcdefghijklmnopqrstuvwxyz"),
            "flx_api_****wxyz"
        );
        assert_eq!(mask("flx_sa_0123456789abcdefghij"), "flx_sa_****ghij");
        assert_eq!(
            mask("flx_refresh_0123456789abcdefghij"),
            "flx_refresh_****ghij"
        );
    }

    #[test]
    fn short_or_unknown_values_show_nothing() {
        assert_eq!(mask("nope"), "****");
        assert_eq!(mask("flx_api_short"), "flx_api_****");
        assert_eq!(mask(""), "****");
        assert_eq!(mask("ghp_0123456789abcdefXYZW"), "****XYZW");
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("flx_api_abcdefghijklmnopqrstuvwxyz");
        assert_eq!(format!("{s:?}"), "Secret(REDACTED)");
    }
}
