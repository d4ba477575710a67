//! A local run's result directory (CLI.md §5, §8), in FluxLoop CLI 0.4's
//! formats: `trace_summary.jsonl` appended and flushed as each run finishes,
//! then `summary.json` and `errors.json` rebuilt from it by streaming.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pulled::Input;

mod files;

use crate::runner::{Finished, TokenUsage};
pub(crate) use files::{write_errors, write_summary, Summary};

pub(crate) const TRACE: &str = "trace_summary.jsonl";
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const ERRORS: &str = "errors.json";
pub(crate) const JUNIT: &str = "junit.xml";

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// JUnit's `timestamp`: ISO 8601 to the second, without an offset.
pub(crate) fn junit_timestamp(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    t.format(format).unwrap_or_default()
}

/// `YYYYmmdd-HHMMSS`: sorts as it reads, and is safe in a file name.
pub(crate) fn compact_stamp(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    t.format(format).unwrap_or_default()
}

/// `error` of a trace record: `message` as FluxLoop CLI 0.4, plus the
/// stderr tail that explains it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct TraceError {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stderr: Option<String>,
}

/// One line of `trace_summary.jsonl`. Null fields are omitted, as FluxLoop
/// CLI 0.4 does; reading tolerates records written by it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TraceRecord {
    #[serde(default)]
    pub(crate) run_id: String,
    #[serde(default)]
    pub(crate) iteration: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) persona: Option<String>,
    #[serde(default)]
    pub(crate) input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input_item_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) input_metadata: Option<Value>,
    #[serde(default)]
    pub(crate) output: String,
    #[serde(default)]
    pub(crate) success: bool,
    #[serde(default)]
    pub(crate) duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) turn_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_usage: Option<TokenUsageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<TraceError>,
    #[serde(default)]
    pub(crate) timestamp: String,
    /// The agent's own `metadata`, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Value>,
    /// How many times the run was started (`--retries`); absent in
    /// records of FluxLoop CLI 0.4, which means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) attempts: Option<u32>,
    /// The earlier attempts that failed, oldest first: a passing run with
    /// any is flaky.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) failed_attempts: Vec<AttemptRecord>,
}

/// A failed attempt that was retried.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct AttemptRecord {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) output: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) stderr: String,
}

/// `token_usage` as read back (FluxLoop CLI 0.4 writes the same three fields).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenUsageRecord {
    #[serde(default)]
    pub(crate) input_tokens: u64,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default)]
    pub(crate) total_tokens: u64,
}

impl From<TokenUsage> for TokenUsageRecord {
    fn from(t: TokenUsage) -> Self {
        TokenUsageRecord {
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            total_tokens: t.total_tokens,
        }
    }
}

impl TraceRecord {
    /// The record of a finished run of `input`.
    pub(crate) fn new(f: &Finished, input: &Input) -> TraceRecord {
        let verdict = f.verdict();
        let reply = f.reply.as_ref();
        TraceRecord {
            run_id: f.run_id.clone(),
            iteration: f.iteration,
            persona: input.persona.clone(),
            input: input.text.clone(),
            input_item_id: input.id.clone(),
            input_metadata: Some(input.item.clone()),
            output: reply.map(|r| r.output.clone()).unwrap_or_default(),
            success: verdict.is_ok(),
            duration_ms: f.duration_ms(),
            turn_count: reply.map(|r| r.turn_count.unwrap_or(1)),
            token_usage: reply.and_then(|r| r.token_usage).map(Into::into),
            error: verdict.err().map(|message| TraceError {
                message,
                stderr: Some(f.stderr_tail.trim().to_string()).filter(|s| !s.is_empty()),
            }),
            timestamp: rfc3339(f.started_at + f.elapsed),
            metadata: reply.and_then(|r| r.metadata.clone()),
            attempts: Some(f.attempts),
            failed_attempts: f
                .failed_attempts
                .iter()
                .map(|a| AttemptRecord {
                    message: a.message.clone(),
                    output: a.stdout_tail.trim().to_string(),
                    stderr: a.stderr_tail.trim().to_string(),
                })
                .collect(),
        }
    }

    /// Passed, but only after a failed attempt.
    pub(crate) fn flaky(&self) -> bool {
        self.success && !self.failed_attempts.is_empty()
    }

    /// The failure message, if the run failed.
    pub(crate) fn error_message(&self) -> Option<&str> {
        if self.success {
            return None;
        }
        Some(
            self.error
                .as_ref()
                .map(|e| e.message.as_str())
                .filter(|m| !m.is_empty())
                .unwrap_or("Unknown error"),
        )
    }

    /// A short label: input id (or the start of the text) and iteration.
    pub(crate) fn label(&self) -> String {
        label(&self.input, self.input_item_id.as_deref(), self.iteration)
    }
}

/// How a run is named for people: input id (or the start of the text) and iteration.
pub(crate) fn label(input: &str, input_item_id: Option<&str>, iteration: u32) -> String {
    let text = excerpt(input, 60);
    match input_item_id {
        Some(id) => {
            let short: String = id.chars().take(8).collect();
            format!("{text} [input {short}, iteration {iteration}]")
        }
        None => format!("{text} [iteration {iteration}]"),
    }
}

/// The first line of `s`, at most `max` characters.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!(
            "{}…",
            line.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}

/// Appends records to `trace_summary.jsonl`, one flushed line per run.
pub(crate) struct TraceWriter {
    file: File,
    path: PathBuf,
}

impl TraceWriter {
    pub(crate) fn create(dir: &Path) -> Result<TraceWriter> {
        let path = dir.join(TRACE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        // Held until the writer is dropped: `sync upload` refuses the
        // directory meanwhile, as its runs are not all there yet.
        crate::result_dir::lock_for_writing(&file, &path)?;
        Ok(TraceWriter { file, path })
    }

    pub(crate) fn append(&mut self, record: &TraceRecord) -> Result<()> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| Error::io("encode", &self.path, e.into()))?;
        line.push(b'\n');
        // One write per record: a crash leaves whole lines only (or one torn last line).
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// Streams the records of a trace file; a malformed line is skipped and counted.
pub(crate) fn read_trace(
    dir: &Path,
    mut each: impl FnMut(TraceRecord) -> Result<()>,
) -> Result<usize> {
    let path = dir.join(TRACE);
    let file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.clone(),
            what: "trace file",
        },
        _ => Error::io("read", &path, e),
    })?;
    let mut skipped = 0;
    // Bytes, not `lines()`: a line torn inside a UTF-8 sequence (a kill
    // mid-append) is one skipped line, not an unreadable file.
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| Error::io("read", &path, e))?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<TraceRecord>(&line) {
            Ok(r) => each(r)?,
            Err(_) => skipped += 1,
        }
    }
    Ok(skipped)
}

/// Counts kept while runs finish; memory stays flat however many runs.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) total: usize,
    pub(crate) success: usize,
    pub(crate) failure: usize,
    /// Passed on a retry (counted in `success` too).
    pub(crate) flaky: usize,
    /// Never started: `--max-failures` was reached first.
    pub(crate) skipped: usize,
    pub(crate) total_duration_ms: u64,
    pub(crate) total_tokens: u64,
    /// The slowest runs, slowest first.
    pub(crate) slowest: Vec<RunBrief>,
    /// The first failed runs (capped), in completion order.
    pub(crate) failed: Vec<RunBrief>,
}

/// A run as shown in tables and annotations.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunBrief {
    pub(crate) run_id: String,
    pub(crate) label: String,
    pub(crate) duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// How many failed runs are kept for the report and annotations.
pub(crate) const KEEP_FAILED: usize = 50;
const KEEP_SLOWEST: usize = 5;

impl Tally {
    pub(crate) fn add(&mut self, r: &TraceRecord) {
        self.total += 1;
        self.total_duration_ms = self.total_duration_ms.saturating_add(r.duration_ms);
        self.total_tokens = self
            .total_tokens
            .saturating_add(r.token_usage.map_or(0, |t| t.total_tokens));
        let brief = RunBrief {
            run_id: r.run_id.clone(),
            label: r.label(),
            duration_ms: r.duration_ms,
            error: r.error_message().map(String::from),
        };
        if r.success {
            self.success += 1;
            self.flaky += usize::from(r.flaky());
        } else {
            self.failure += 1;
            if self.failed.len() < KEEP_FAILED {
                self.failed.push(brief.clone());
            }
        }
        let pos = self
            .slowest
            .partition_point(|b| b.duration_ms >= brief.duration_ms);
        if pos < KEEP_SLOWEST {
            self.slowest.insert(pos, brief);
            self.slowest.truncate(KEEP_SLOWEST);
        }
    }

    pub(crate) fn success_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.success as f64 / self.total as f64 * 10_000.0).round() / 10_000.0
        }
    }
}

/// Facts about the run that are not in the records.
pub(crate) struct RunInfo<'a> {
    pub(crate) scenario: &'a str,
    pub(crate) runner_type: &'a str,
    pub(crate) bundle_version_id: Option<&'a str>,
    pub(crate) started_at: OffsetDateTime,
    pub(crate) completed_at: OffsetDateTime,
    pub(crate) iterations: u32,
    pub(crate) parallel: usize,
    pub(crate) interrupted: bool,
    /// Every file of the directory is written: nothing more will change.
    pub(crate) complete: bool,
    /// The run batch all shards of the build append to (issue 17).
    pub(crate) batch_key: Option<&'a str>,
    pub(crate) shard: Option<crate::config::project::limits::Shard>,
}

/// Creates `<results>/<scenario>-<YYYYmmdd-HHMMSS>` (UTC), with a `-2`, `-3`…
/// suffix when another run started in the same second.
pub(crate) fn create_dir(results: &Path, scenario: &str, now: OffsetDateTime) -> Result<PathBuf> {
    std::fs::create_dir_all(results).map_err(|e| Error::io("create directory", results, e))?;
    let base = format!(
        "{}-{}",
        crate::pulled::dir_name(scenario),
        compact_stamp(now)
    );
    for n in 1..1000 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = results.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create directory", &dir, e)),
        }
    }
    Err(Error::io(
        "create directory",
        results.join(base),
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "too many runs in one second",
        ),
    ))
}

/// The sort key of a result directory name `<scenario>-YYYYmmdd-HHMMSS[-N]`:
/// (scenario part, timestamp, N).
pub(crate) fn parse_dir_name(name: &str) -> Option<(String, String, u32)> {
    let (rest, n) = match name.rsplit_once('-') {
        Some((rest, n))
            if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (rest, n.parse().ok()?)
        }
        _ => (name, 1),
    };
    let (rest, time) = rest.rsplit_once('-')?;
    let (scenario, date) = rest.rsplit_once('-')?;
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) || !digits(time, 6) || scenario.is_empty() {
        return None;
    }
    Some((scenario.to_string(), format!("{date}{time}"), n))
}

/// The newest result directory (of `scenario`, when given).
pub(crate) fn newest_dir(results: &Path, scenario: Option<&str>) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(results) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read directory", results, e)),
    };
    let want = scenario.map(crate::pulled::dir_name);
    let mut best: Option<((String, u32), PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((s, stamp, n)) = parse_dir_name(&name) else {
            continue;
        };
        if want.as_ref().is_some_and(|w| *w != s) || !entry.path().join(TRACE).is_file() {
            continue;
        }
        let key = (stamp, n);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Milliseconds as seconds for people: `850 ms`, `2.4 s`.
pub(crate) fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", Duration::from_millis(ms).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_zero_padded_utc_fields() {
        // 2024-01-02T03:04:05Z
        let t = OffsetDateTime::from_unix_timestamp(1_704_164_645).unwrap();
        assert_eq!(junit_timestamp(t), "2024-01-02T03:04:05");
        assert_eq!(compact_stamp(t), "20240102-030405");
        let late = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(junit_timestamp(late), "2023-11-14T22:13:20");
    }

    #[test]
    fn dir_names() {
        assert_eq!(
            parse_dir_name("support-bot-20240102-030405"),
            Some(("support-bot".into(), "20240102030405".into(), 1))
        );
        assert_eq!(
            parse_dir_name("support-bot-20240102-030405-2"),
            Some(("support-bot".into(), "20240102030405".into(), 2))
        );
        assert_eq!(parse_dir_name("support-bot"), None);
        assert_eq!(parse_dir_name("x-2024-030405"), None);
    }

    #[test]
    fn create_avoids_collisions_and_newest_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let a = create_dir(tmp.path(), "bot", now).unwrap();
        let b = create_dir(tmp.path(), "bot", now).unwrap();
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("-2"));
        std::fs::write(a.join(TRACE), "").unwrap();
        assert_eq!(
            newest_dir(tmp.path(), Some("bot")).unwrap(),
            Some(a.clone())
        );
        std::fs::write(b.join(TRACE), "").unwrap();
        assert_eq!(newest_dir(tmp.path(), Some("bot")).unwrap(), Some(b));
        assert_eq!(newest_dir(tmp.path(), Some("other")).unwrap(), None);
    }

    #[test]
    fn tally_keeps_the_slowest_and_rounds_the_rate() {
        let mut t = Tally::default();
        for (i, ms) in [5u64, 50, 1, 40, 30, 20, 10].iter().enumerate() {
            t.add(&TraceRecord {
                run_id: format!("r{i}"),
                duration_ms: *ms,
                success: i != 0,
                ..Default::default()
            });
        }
        let slow: Vec<u64> = t.slowest.iter().map(|b| b.duration_ms).collect();
        assert_eq!(slow, vec![50, 40, 30, 20, 10]);
        assert_eq!((t.total, t.success, t.failure), (7, 6, 1));
        assert_eq!(t.success_rate(), 0.8571);
        assert_eq!(t.failed[0].error.as_deref(), Some("Unknown error"));
    }

    #[test]
    fn record_fields_match_fluxloop_cli_0_4() {
        let r = TraceRecord {
            run_id: "r".into(),
            input: "hi".into(),
            success: true,
            timestamp: "t".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "duration_ms",
                "input",
                "iteration",
                "output",
                "run_id",
                "success",
                "timestamp"
            ]
        );
    }
}
