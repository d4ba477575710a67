//! Everything the CLI writes: results on stdout (human or `--json`),
//! progress, warnings and errors on stderr, and GitHub workflow commands.
//! Commands return reports; only this module (and `main`) prints.

mod apikeys;
mod auth;
mod completion;
mod config;
mod doctor;
pub(crate) mod github;
mod init;
pub(crate) mod junit;
mod merge;
mod preview;
pub(crate) mod report;
mod shard;
pub(crate) mod sync;
pub(crate) mod test;

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::Error;

/// A command's result, rendered as text or JSON.
pub(crate) trait Render {
    fn to_json(&self) -> serde_json::Value;
    fn human(&self, style: &Style) -> String;
    fn quiet(&self, style: &Style) -> String;
}

/// Reports that render themselves as text; JSON comes from `Serialize`.
pub(crate) trait Human {
    fn human(&self, style: &Style) -> String;

    /// What `--quiet` prints: the one value a script needs, if the command
    /// has one (a new key, a setting's value, the test verdict), else nothing.
    fn quiet(&self, _style: &Style) -> String {
        String::new()
    }
}

impl<T: Serialize + Human> Render for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    fn human(&self, style: &Style) -> String {
        Human::human(self, style)
    }
    fn quiet(&self, style: &Style) -> String {
        Human::quiet(self, style)
    }
}

/// What a command produced: a report, and the exit code it implies.
pub(crate) struct Outcome {
    pub(crate) report: Box<dyn Render>,
    pub(crate) code: u8,
}

impl Outcome {
    pub(crate) fn ok(report: impl Render + 'static) -> Self {
        Outcome {
            report: Box::new(report),
            code: 0,
        }
    }
}

/// Whether to colour: `Some` when decided whatever the stream is, `None`
/// for "on a terminal". `--color`/`--no-color` first, then `FORCE_COLOR` and
/// `CLICOLOR_FORCE` (set and not `0`), then `NO_COLOR` (set at all).
pub(crate) fn color_choice(
    flag: Option<crate::cli::ColorChoice>,
    env: &crate::config::Env,
) -> Option<bool> {
    use crate::cli::ColorChoice;
    match flag {
        Some(ColorChoice::Always) => return Some(true),
        Some(ColorChoice::Never) => return Some(false),
        Some(ColorChoice::Auto) | None => {}
    }
    let forced = |name: &str| env.get_lossy(name).is_some_and(|v| v.trim() != "0");
    if forced("FORCE_COLOR") || forced("CLICOLOR_FORCE") {
        Some(true)
    } else if env.get_os("NO_COLOR").is_some() {
        Some(false)
    } else {
        None
    }
}

/// ANSI styling: on a terminal unless told otherwise (see [`color_choice`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(crate) fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub(crate) fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub(crate) fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub(crate) fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub(crate) fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// The printer. Cheap to share between threads (progress from workers).
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) verbose: u8,
    /// Style for stdout.
    pub(crate) style: Style,
    /// Style for stderr.
    pub(crate) err_style: Style,
    pub(crate) stderr_tty: bool,
    pub(crate) stdin_tty: bool,
    /// Running under GitHub Actions: workflow commands are understood.
    pub(crate) github: bool,
    /// Serialises stderr lines from worker threads.
    lock: Mutex<()>,
}

impl Output {
    pub(crate) fn new(
        json: bool,
        quiet: bool,
        verbose: u8,
        color: Option<bool>,
        github: bool,
    ) -> Self {
        let stdout_tty = io::stdout().is_terminal();
        let stderr_tty = io::stderr().is_terminal();
        Output {
            json,
            quiet,
            verbose,
            style: Style {
                color: color.unwrap_or(stdout_tty),
            },
            err_style: Style {
                color: color.unwrap_or(stderr_tty),
            },
            stderr_tty,
            stdin_tty: io::stdin().is_terminal(),
            github,
            lock: Mutex::new(()),
        }
    }

    /// A line of text for a person on stderr, made safe first (see [`Output::printable`]).
    fn stderr_line(&self, line: &str) {
        let line = self.printable(line, self.err_style.color);
        self.stderr_raw(line.trim_end_matches('\n'));
    }

    /// A line exactly as given: our own workflow commands only.
    fn stderr_raw(&self, line: &str) {
        let _guard = self.lock.lock();
        let _ = writeln!(io::stderr().lock(), "{line}");
    }

    /// Every text printed for a person may carry words that are not ours
    /// (an agent's error, a server's message, a scenario name): escape and
    /// control sequences go, but for our own colours, and under GitHub
    /// Actions no line of it can act as a workflow command.
    fn printable(&self, text: &str, colour: bool) -> String {
        let clean = crate::secret::strip_controls(text, colour);
        if self.github {
            github::fence(&clean).into_owned()
        } else {
            clean
        }
    }

    /// A warning on stderr (not with `--quiet`).
    pub(crate) fn warn(&self, message: &str) {
        if !self.quiet {
            self.stderr_line(&format!("{} {message}", self.err_style.yellow("warning:")));
        }
    }

    /// Progress and notes on stderr (not with `--quiet`).
    pub(crate) fn info(&self, message: &str) {
        if !self.quiet {
            self.stderr_line(message);
        }
    }

    /// A line the person must see even under `--quiet` (a login code).
    pub(crate) fn notice(&self, message: &str) {
        self.stderr_line(message);
    }

    /// Registers a secret with GitHub Actions on stderr, keeping stdout for a
    /// value a script captures (`apikeys create`).
    pub(crate) fn add_mask_stderr(&self, secret: &str) {
        if self.github && !secret.is_empty() {
            self.stderr_raw(&format!("::add-mask::{}", github::escape_data(secret)));
        }
    }

    /// Asks a question on stderr and reads one line from stdin.
    pub(crate) fn prompt(&self, question: &str) -> io::Result<String> {
        {
            let _guard = self.lock.lock();
            let mut err = io::stderr().lock();
            write!(err, "{question} ")?;
            err.flush()?;
        }
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        Ok(answer)
    }

    /// A `--verbose` trace line on stderr.
    pub(crate) fn trace(&self, message: &str) {
        if self.verbose > 0 {
            self.stderr_line(&self.err_style.dim(message));
        }
    }

    /// Rewrites the current stderr line (TTY progress).
    pub(crate) fn progress(&self, line: &str) {
        if self.quiet {
            return;
        }
        let _guard = self.lock.lock();
        let _ = write!(io::stderr().lock(), "\r\x1b[2K{line}");
    }

    /// Ends a progress line.
    pub(crate) fn progress_done(&self) {
        if !self.quiet && self.stderr_tty {
            let _guard = self.lock.lock();
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
    }

    /// Registers a secret with GitHub Actions so the runner masks it in logs.
    /// Under `--json` it goes to stderr to keep stdout one document; the
    /// runner reads workflow commands from both streams.
    pub(crate) fn add_mask(&self, secret: &str) {
        if !self.github || secret.is_empty() {
            return;
        }
        let line = format!("::add-mask::{}", github::escape_data(secret));
        if self.json {
            self.stderr_raw(&line);
        } else {
            let _ = writeln!(io::stdout().lock(), "{line}");
        }
    }

    /// A GitHub workflow command on stdout (never with `--json`); any
    /// untrusted part of it must already be escaped.
    pub(crate) fn workflow_command(&self, line: &str) {
        if self.github && !self.json {
            let line = crate::secret::strip_controls(line, false);
            let _guard = self.lock.lock();
            let _ = writeln!(io::stdout().lock(), "{line}");
        }
    }

    /// Prints a command's report on stdout.
    pub(crate) fn report(&self, report: &dyn Render) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            writeln!(out, "{}", json_document(&report.to_json()))?;
        } else {
            let text = if self.quiet {
                report.quiet(&self.style)
            } else {
                report.human(&self.style)
            };
            let text = self.printable(&text, self.style.color);
            if !text.trim().is_empty() {
                write!(out, "{text}")?;
                if !text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
        }
        out.flush()
    }

    /// Prints an error once: `error: …` and `hint: …` lines on stderr, or
    /// the `{"error": …}` document on stdout under `--json`.
    pub(crate) fn error(&self, err: &Error) {
        let hints = err.hints();
        if self.json {
            let doc = serde_json::json!({
                "error": {
                    "code": err.kind(),
                    "exit_code": err.exit_code(),
                    "message": err.to_string(),
                    "hint": hints.join("\n"),
                }
            });
            let _ = writeln!(io::stdout().lock(), "{}", json_document(&doc));
            return;
        }
        let mut text = format!("{} {err}", self.err_style.red("error:"));
        if let Error::Io { source, .. } = err {
            if let Some(inner) = std::error::Error::source(source.as_ref()) {
                text.push_str(&format!("\n  caused by: {inner}"));
            }
        }
        for hint in hints {
            text.push_str(&format!("\n  {} {hint}", self.err_style.bold("hint:")));
        }
        self.stderr_line(&text);
    }
}

/// The version of the `--json` documents' shape; it changes only when a
/// field is removed or changes meaning (new fields may appear any time).
pub(crate) const JSON_SCHEMA_VERSION: u32 = 1;

/// A `--json` document, pretty-printed, with its `schema_version`.
pub(crate) fn json_document(doc: &serde_json::Value) -> String {
    let doc = match doc {
        serde_json::Value::Object(fields) => {
            let mut with = serde_json::Map::new();
            with.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
            with.extend(fields.clone());
            serde_json::Value::Object(with)
        }
        other => serde_json::json!({"schema_version": JSON_SCHEMA_VERSION, "data": other}),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// `3 runs`, `1 run`.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Formats a count with thousands separators, as the seed shows usage counts.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lays out rows as left-aligned columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "NAME"],
            &[vec!["1".into(), "a".into()], vec!["22".into(), "bb".into()]],
        );
        assert_eq!(t, "ID  NAME\n1   a\n22  bb\n");
    }
}
