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

/// Makes text from a server or an agent fit to print: every known secret
/// and anything shaped like a credential masked, control characters (ANSI
/// and OSC escapes, CR) dropped, and at most `max_chars` characters kept.
pub(crate) fn scrub(text: &str, known: &[&Secret], max_chars: usize) -> String {
    let mut s = text.to_string();
    for secret in known {
        if secret.expose().len() >= 8 {
            s = s.replace(secret.expose(), &secret.masked());
        }
    }
    let s = mask_token_shapes(&s);
    let mut out = strip_controls(&s, false);
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars).collect::<String>() + "…";
    }
    out.trim().to_string()
}

/// Drops escape sequences and control characters; keeps line breaks, tabs
/// and, with `keep_colour`, SGR colour sequences (`ESC [ … m`), which can
/// only change how text looks, never move the cursor or retitle a window.
pub(crate) fn strip_controls(text: &str, keep_colour: bool) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.peek() {
                // CSI: parameters up to a final byte in @..~.
                Some('[') => {
                    chars.next();
                    let mut seq = String::from("\x1b[");
                    for c in chars.by_ref() {
                        seq.push(c);
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                    let sgr = seq.ends_with('m')
                        && seq[2..seq.len() - 1]
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ';');
                    if keep_colour && sgr {
                        out.push_str(&seq);
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Masks `flx_…` tokens, `Bearer …` values and the values of JSON fields
/// named like credentials, wherever they stand in the text.
fn mask_token_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = strip_prefix_ci(rest, "bearer ") {
            let n = after
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .unwrap_or(after.len());
            out.push_str(&rest[..rest.len() - after.len()]);
            out.push_str(&mask(&after[..n]));
            rest = &after[n..];
            continue;
        }
        if rest.starts_with("flx_") && !out.ends_with(is_token_char) {
            let n = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
            if n >= 12 {
                out.push_str(&mask(&rest[..n]));
                rest = &rest[n..];
                continue;
            }
        }
        if let Some((field_end, value_len)) = credential_field(rest) {
            out.push_str(&rest[..field_end]);
            out.push_str(&mask(&rest[field_end..field_end + value_len]));
            rest = &rest[field_end + value_len..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `"refresh_token": "VALUE"` at the start of `s`: the offset where VALUE
/// starts and its length.
fn credential_field(s: &str) -> Option<(usize, usize)> {
    const NAMES: &[&str] = &[
        "\"refresh_token\"",
        "\"access_token\"",
        "\"device_code\"",
        "\"api_key\"",
        "\"key\"",
        "\"token\"",
        "\"password\"",
    ];
    let name = NAMES.iter().find(|n| s.starts_with(*n))?;
    let after = &s[name.len()..];
    let colon = after.len() - after.trim_start().len();
    let after_colon = after.trim_start().strip_prefix(':')?;
    let ws = after_colon.len() - after_colon.trim_start().len();
    let value = after_colon.trim_start().strip_prefix('"')?;
    let len = value.find('"').unwrap_or(value.len());
    let start = name.len() + colon + 1 + ws + 1;
    Some((start, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_credentials_and_strips_escapes() {
        let own = Secret::new("opaque-token-without-prefix-1234");
        let echoed = "GET /x\r\nAuthorization: Bearer opaque-token-without-prefix-1234\r\n\x1b]0;pwned\x07\x1b[31mred\x1b[0m {\"refresh_token\": \"flx_refresh_ABCDEFGHIJKLMNOPQRST\", \"device_code\":\"dc-secret-value-0000\"} flx_sa_0123456789abcdefghij";
        assert_eq!(
            scrub(echoed, &[&own], 1000),
            "GET /x\nAuthorization: Bearer ****\nred {\"refresh_token\": \"flx_refresh_****QRST\", \"device_code\":\"****0000\"} flx_sa_****ghij"
        );
        assert_eq!(scrub("abcdef", &[], 3), "abc…");
    }

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
