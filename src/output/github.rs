//! GitHub Actions workflow commands: escaping for `::command::` lines.
//!
//! The runner decodes `%25`, `%0D`, `%0A` in data, and additionally `%3A`,
//! `%2C` in properties; anything else would be read as a new command or
//! property separator.

/// Escapes a workflow command's data part.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (`title=`, `file=`).
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("run 1: x, y"), "run 1%3A x%2C y");
    }
}

/// Appends `text` to a file the runner gave us (`$GITHUB_STEP_SUMMARY`,
/// `$GITHUB_OUTPUT`); the runner reads them after the step.
pub(crate) fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// [`append`], or a warning naming the file when it cannot be written: a
/// step summary is a nicety, never the reason a job fails.
pub(crate) fn append_or_warn(out: &super::Output, name: &str, path: &std::path::Path, text: &str) {
    if let Err(e) = append(path, text) {
        out.warn(&format!("cannot write {name} {}: {e}", path.display()));
    }
}

/// `name=value` lines for `$GITHUB_OUTPUT`; a value with a line break uses
/// the heredoc form with a random delimiter so it cannot end early.
pub(crate) fn outputs(pairs: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (name, value) in pairs {
        if value.contains('\n') || value.contains('\r') {
            let delim = format!("ghadelimiter_{}", uuid::Uuid::new_v4().simple());
            s.push_str(&format!("{name}<<{delim}\n{value}\n{delim}\n"));
        } else {
            s.push_str(&format!("{name}={value}\n"));
        }
    }
    s
}

/// An `::error title=…::message` annotation line.
pub(crate) fn error_annotation(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// A Markdown table cell: no line breaks, no column separators, no HTML,
/// and no Markdown of its own (links, images, emphasis), since the text is
/// an agent's or a server's.
pub(crate) fn md_cell(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(one_line.len());
    for c in one_line.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push('\''),
            '\\' | '|' | '[' | ']' | '(' | ')' | '*' | '_' | '!' | '#' | '~' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A link target for Markdown: only http(s), with the characters that
/// could end the link or start markup percent-encoded.
pub(crate) fn md_url(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' | ')' | '<' | '>' | '"' | '\'' | ' ' | '`' | '[' | ']' | '\\' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() || !c.is_ascii() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether the runner would read `line` as a workflow command: it trims
/// leading white space, then looks for `::name` or the older `##[name`.
fn starts_command(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("::") || t.starts_with("##[")
}

/// Text that is not ours (an agent's output, a server's message) made
/// unable to issue workflow commands: when any line would be read as one,
/// the whole text is fenced by `::stop-commands::` with a token nobody
/// can guess, which is the runner's own way to print such text verbatim.
pub(crate) fn fence(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.lines().any(starts_command) {
        return std::borrow::Cow::Borrowed(text);
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let nl = if text.ends_with('\n') { "" } else { "\n" };
    std::borrow::Cow::Owned(format!("::stop-commands::{token}\n{text}{nl}::{token}::\n"))
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn outputs_and_annotations() {
        assert_eq!(
            outputs(&[("total", "3".into()), ("failed", "1".into())]),
            "total=3\nfailed=1\n"
        );
        let multi = outputs(&[("x", "a\nb".into())]);
        let delim = multi
            .lines()
            .next()
            .unwrap()
            .strip_prefix("x<<")
            .unwrap()
            .to_string();
        assert_eq!(multi, format!("x<<{delim}\na\nb\n{delim}\n"));
        assert_eq!(
            error_annotation("run 1: a, b", "exit 3\nstderr: 100%"),
            "::error title=run 1%3A a%2C b::exit 3%0Astderr: 100%25"
        );
        assert_eq!(md_cell("a|b\n<c>"), "a\\|b &lt;c&gt;");
        assert_eq!(
            md_cell("[click](https://evil.example) ![x](y) **b**"),
            "\\[click\\]\\(https://evil.example\\) \\!\\[x\\]\\(y\\) \\*\\*b\\*\\*"
        );
        assert_eq!(
            md_url("https://h/x) [y](z").as_deref(),
            Some("https://h/x%29%20%5By%5D%28z")
        );
        assert_eq!(md_url("javascript:alert(1)"), None);
        assert_eq!(fence("plain\nlines\n"), "plain\nlines\n");
        let fenced = fence("ok\n  ::error::forged\n");
        let lines: Vec<&str> = fenced.lines().collect();
        let token = lines[0].strip_prefix("::stop-commands::").unwrap();
        assert_eq!(token.len(), 32);
        assert_eq!(
            &lines[1..],
            &["ok", "  ::error::forged", &format!("::{token}::")]
        );
    }
}
