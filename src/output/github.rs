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

/// A Markdown table cell: no line breaks, no column separators, no HTML.
pub(crate) fn md_cell(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
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
    }
}
