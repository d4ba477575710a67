//! Small helpers shared by every module: clock and timestamp formatting,
//! CSPRNG-backed identifiers and secrets, SHA-256 hashing, HTML escaping and
//! URL decoding.

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Letters for secrets: 62 symbols, so a byte maps onto one with a rejection
/// step (bytes >= 248 are redrawn) and no bias.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Letters for user codes: no 0/O, 1/I, so a code read aloud or off a screen
/// cannot be mistyped.
const USER_CODE: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Milliseconds since the Unix epoch; the unit every stored time uses.
pub(crate) fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC with `Z`, to the second, e.g. `2025-01-31T12:00:00Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return "1970-01-01T00:00:00Z".to_owned();
    };
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Same as [`rfc3339`] for nullable columns.
pub(crate) fn rfc3339_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// Whether a client-sent timestamp is RFC 3339 (Python's `isoformat()` with an
/// offset is).
pub(crate) fn is_rfc3339(s: &str) -> bool {
    OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

/// Fills `buf` from the OS CSPRNG. There is no fallback: a machine without a
/// working random source must not hand out keys.
fn random_bytes(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        // Continuing would issue guessable credentials; stopping is the only
        // safe answer, and the OS source failing is not an input error.
        panic!("OS random number generator failed: {e}");
    }
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols).
fn random_from(alphabet: &[u8], len: usize) -> String {
    // Largest multiple of the alphabet size that fits a byte: values at or above
    // it are redrawn so every symbol is equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf);
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    out
}

/// A secret: `prefix` followed by `len` random alphanumeric characters.
pub(crate) fn secret(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_from(ALNUM, len))
}

/// A device-login user code, `XXXX-XXXX`.
pub(crate) fn user_code() -> String {
    let raw = random_from(USER_CODE, 8);
    format!("{}-{}", &raw[..4], &raw[4..])
}

/// Brings what a person typed into the stored `XXXX-XXXX` form: upper case,
/// spaces and dashes ignored.
pub(crate) fn normalize_user_code(input: &str) -> String {
    let raw: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if raw.len() == 8 {
        format!("{}-{}", &raw[..4], &raw[4..])
    } else {
        raw
    }
}

/// A new random UUID v4 as a string.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// SHA-256 of a secret; the only form in which secrets are stored.
pub(crate) fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set). Invalid escapes
/// are kept literally; invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=2` (query strings and form bodies) into decoded pairs.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_prefix_length_and_alphabet() {
        let s = secret("flx_sa_", 32);
        assert!(s.starts_with("flx_sa_"));
        assert_eq!(s.len(), 39);
        assert!(s[7..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(secret("x", 32), secret("x", 32));
    }

    #[test]
    fn user_codes_avoid_ambiguous_letters() {
        for _ in 0..50 {
            let c = user_code();
            assert_eq!(c.len(), 9);
            assert_eq!(&c[4..5], "-");
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
        assert_eq!(normalize_user_code("abcd efgh"), "ABCD-EFGH");
        assert_eq!(normalize_user_code("ABCD-EFGH"), "ABCD-EFGH");
    }

    #[test]
    fn escapes_and_decodes() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(percent_decode("a%20b+c%zz%", true), "a b c%zz%");
        assert_eq!(
            parse_form("user_code=AB%2DCD&action=approve"),
            vec![
                ("user_code".to_owned(), "AB-CD".to_owned()),
                ("action".to_owned(), "approve".to_owned())
            ]
        );
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(is_rfc3339("2025-01-01T10:00:00.123456+00:00"));
        assert!(!is_rfc3339("yesterday"));
    }
}
