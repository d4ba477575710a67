//! The API key format (CLI.md §3), checked before any network use.

use crate::secret::Secret;

/// Prefix of user keys.
pub(crate) const USER_PREFIX: &str = "flx_api_";
/// Prefix of service-account keys.
pub(crate) const SERVICE_ACCOUNT_PREFIX: &str = "flx_sa_";
/// Characters required after the prefix.
const MIN_BODY_LEN: usize = 20;

/// How a key value reached us, which decides how forgiving we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyInput {
    /// Typed or exported by a person: stray whitespace or quotes are a mistake
    /// worth reporting, since silently fixing them hides a broken CI secret.
    Typed,
    /// Read from a file: a trailing newline is how editors save files.
    File,
}

/// Why a value is not an API key, and what to do about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyProblem {
    pub(crate) problem: String,
    pub(crate) hint: String,
}

/// Returns the key if `raw` has the form of an API key.
pub(crate) fn parse_api_key(raw: &str, input: KeyInput) -> Result<Secret, KeyProblem> {
    let value = match input {
        KeyInput::File => raw.trim(),
        KeyInput::Typed => raw,
    };
    let expected = format!(
        "an API key looks like {USER_PREFIX}… or {SERVICE_ACCOUNT_PREFIX}… followed by at least {MIN_BODY_LEN} characters of A-Z a-z 0-9 _ -"
    );
    let problem = |problem: String, hint: String| Err(KeyProblem { problem, hint });

    if value.is_empty() {
        return problem("the value is empty".into(), expected);
    }
    for quote in ['"', '\''] {
        if value.starts_with(quote) || value.ends_with(quote) {
            return problem(
                "the value is wrapped in quotes".into(),
                "remove the quotes: quotes inside a variable's value (a .env file, a CI variable) are not stripped by the shell".into(),
            );
        }
    }
    if value.trim_end() != value {
        let what = if value.ends_with('\n') || value.ends_with('\r') {
            "a trailing newline"
        } else {
            "trailing whitespace"
        };
        return problem(
            format!("the value has {what}"),
            "remove it, e.g. export FLUXLOOP_API_KEY=\"$(tr -d '[:space:]' < api_key.txt)\"".into(),
        );
    }
    if value.trim_start() != value {
        return problem(
            "the value has leading whitespace".into(),
            "remove the whitespace before flx_".into(),
        );
    }
    let Some(body) = value
        .strip_prefix(USER_PREFIX)
        .or_else(|| value.strip_prefix(SERVICE_ACCOUNT_PREFIX))
    else {
        if value.starts_with("flx_at_") || value.starts_with("flx_refresh_") {
            return problem(
                "this is a login token, not an API key".into(),
                "pass login tokens in FLUXLOOP_TOKEN, or use `fluxloop auth login`".into(),
            );
        }
        return problem(
            format!("it does not start with {USER_PREFIX} or {SERVICE_ACCOUNT_PREFIX}"),
            // Never suggest echoing the key: that prints it into CI logs.
            format!("{expected}; compare its first characters (`printf %.8s \"$FLUXLOOP_API_KEY\"`) with the key on the platform (settings/api-keys)"),
        );
    };
    if let Some((pos, c)) = value
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        let shown = match c {
            ' ' => "a space".to_string(),
            '\n' | '\r' => "a line break".to_string(),
            '\t' => "a tab".to_string(),
            c if c.is_ascii_graphic() => format!("'{c}'"),
            c => format!("U+{:04X}", c as u32),
        };
        return problem(
            format!("it contains {shown} at position {}", pos + 1),
            expected,
        );
    }
    let len = body.chars().count();
    if len < MIN_BODY_LEN {
        return problem(
            format!("it is too short: {len} characters after the prefix, expected at least {MIN_BODY_LEN}"),
            "the key may have been cut when copied; copy it again or create a new one".into(),
        );
    }
    Ok(Secret::new(value))
}

/// [`parse_api_key`] for a value from `origin` (named in the error), as the
/// CLI's `Invalid API key` error.
pub(crate) fn api_key_from(
    raw: &str,
    input: KeyInput,
    origin: &str,
) -> crate::error::Result<Secret> {
    parse_api_key(raw, input).map_err(|p| crate::error::Error::InvalidApiKey {
        origin: origin.to_string(),
        problem: p.problem,
        hint: p.hint,
    })
}

/// Whether a bearer value is an API key (as opposed to a login token).
pub(crate) fn is_api_key(value: &str) -> bool {
    value.starts_with(USER_PREFIX) || value.starts_with(SERVICE_ACCOUNT_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "flx_api_abcdefghijklmnopqrst";

    fn problem(raw: &str, input: KeyInput) -> String {
        parse_api_key(raw, input).unwrap_err().problem
    }

    #[test]
    fn good_keys() {
        for key in [
            GOOD,
            "flx_sa_ABCDEFGHIJ0123456789",
            "flx_api_a-b_c-d_e-f_g-h_i-j_k",
            "flx_sa_0123456789012345678901234567890123456789",
        ] {
            assert_eq!(
                parse_api_key(key, KeyInput::Typed).unwrap().expose(),
                key,
                "{key}"
            );
        }
    }

    #[test]
    fn file_input_is_trimmed() {
        let key = parse_api_key(&format!("  {GOOD}\n"), KeyInput::File).unwrap();
        assert_eq!(key.expose(), GOOD);
        let key = parse_api_key(&format!("{GOOD}\r\n"), KeyInput::File).unwrap();
        assert_eq!(key.expose(), GOOD);
    }

    #[test]
    fn bad_keys() {
        let cases: &[(&str, &str)] = &[
            ("", "the value is empty"),
            ("nope", "it does not start with flx_api_ or flx_sa_"),
            (
                "flx_xyz_abcdefghijklmnopqrst",
                "it does not start with flx_api_ or flx_sa_",
            ),
            (
                "FLX_API_abcdefghijklmnopqrst",
                "it does not start with flx_api_ or flx_sa_",
            ),
            (
                "flx_at_abcdefghijklmnopqrst",
                "this is a login token, not an API key",
            ),
            (
                "flx_api_short",
                "it is too short: 5 characters after the prefix, expected at least 20",
            ),
            (
                "flx_sa_",
                "it is too short: 0 characters after the prefix, expected at least 20",
            ),
            (
                "\"flx_api_abcdefghijklmnopqrst\"",
                "the value is wrapped in quotes",
            ),
            (
                "'flx_api_abcdefghijklmnopqrst'",
                "the value is wrapped in quotes",
            ),
            (
                "flx_api_abcdefghijklmnopqrst\n",
                "the value has a trailing newline",
            ),
            (
                "flx_api_abcdefghijklmnopqrst ",
                "the value has trailing whitespace",
            ),
            (
                " flx_api_abcdefghijklmnopqrst",
                "the value has leading whitespace",
            ),
            (
                "flx_api_abcdefghij klmnopqrst",
                "it contains a space at position 19",
            ),
            (
                "flx_api_abcdefghij\nklmnopqrst",
                "it contains a line break at position 19",
            ),
            (
                "flx_api_abcdefghij.klmnopqrst",
                "it contains '.' at position 19",
            ),
            (
                "flx_api_abcdéfghijklmnopqrst",
                "it contains U+00E9 at position 13",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(problem(raw, KeyInput::Typed), *want, "{raw:?}");
        }
    }

    #[test]
    fn problems_never_contain_the_value() {
        for raw in ["flx_api_SECRETSECRETSECRET.x", "SECRETSECRETSECRETSECRET"] {
            let p = parse_api_key(raw, KeyInput::Typed).unwrap_err();
            assert!(!p.problem.contains("SECRET"), "{p:?}");
            assert!(!p.hint.contains("SECRET"), "{p:?}");
        }
    }
}
