//! The documents of a result directory beside the trace: `summary.json` and
//! `errors.json`, each one typed struct that writes the file and reads it
//! back. (`trace_summary.jsonl` lines are [`TraceRecord`]s; the upload's
//! progress file is `upload::State`.)
//!
//! Fields are declared in alphabetical order: the files were first written
//! from `json!` maps, which serde_json keeps sorted, and the same bytes come
//! out now. Reading is lenient field by field, as the untyped getters were:
//! a field of another type (FluxLoop CLI 0.4 writes some numbers as floats)
//! reads as absent instead of making the whole file unreadable.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{read_trace, rfc3339, RunInfo, Tally, TraceRecord, ERRORS, SUMMARY};
use crate::api::types::lenient;
use crate::config::project::limits::{self, Shard};
use crate::error::{Error, Result};

/// `summary.json`: FluxLoop CLI 0.4's fields (`experiment_name`,
/// `runner_type`, the counts, `created_at`), then ours.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// The run batch all shards of the build append to: read back by `sync
    /// upload`, so a shard uploaded later (after a kill, or by hand) still
    /// joins its batch.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) batch_key: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) bundle_version_id: Option<String>,
    /// `fluxloop-rs VERSION`: which client wrote the directory.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) cli: Option<String>,
    /// Every file of the directory is written; false while (or if killed
    /// while) the run writes it, absent in FluxLoop CLI 0.4's.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) complete: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) completed_at: Option<String>,
    /// FluxLoop CLI 0.4's only time: when the summary was written.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) created_at: Option<String>,
    /// FluxLoop CLI 0.4's name of the scenario.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) experiment_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) failure_count: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) flaky_count: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) interrupted: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) iterations: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) parallel: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) runner_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) scenario: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) shard: Option<ShardRecord>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) skipped_count: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) started_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) success_count: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) success_rate: f64,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) total_duration_ms: u64,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) total_runs: usize,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) total_tokens: u64,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) wall_time_ms: u64,
}

/// `shard` of `summary.json`, as written; [`ShardRecord::shard`] validates it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ShardRecord {
    pub(crate) index: u64,
    pub(crate) total: u64,
}

impl ShardRecord {
    /// The shard, when the recorded numbers make one.
    pub(crate) fn shard(&self) -> Option<Shard> {
        limits::shard_of(self.index, self.total).ok()
    }
}

impl From<Shard> for ShardRecord {
    fn from(s: Shard) -> Self {
        ShardRecord {
            index: s.index.into(),
            total: s.total.into(),
        }
    }
}

/// A text field that says something: present and not empty.
fn text(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

impl Summary {
    /// The summary of a run so far.
    pub(crate) fn new(info: &RunInfo<'_>, tally: &Tally) -> Summary {
        Summary {
            batch_key: info.batch_key.map(String::from),
            bundle_version_id: info.bundle_version_id.map(String::from),
            cli: Some(format!("fluxloop-rs {}", env!("CARGO_PKG_VERSION"))),
            complete: Some(info.complete),
            completed_at: Some(rfc3339(info.completed_at)),
            created_at: Some(rfc3339(info.completed_at)),
            experiment_name: Some(info.scenario.to_string()),
            failure_count: tally.failure,
            flaky_count: tally.flaky,
            interrupted: info.interrupted,
            iterations: Some(info.iterations),
            parallel: info.parallel,
            runner_type: Some(info.runner_type.to_string()),
            scenario: Some(info.scenario.to_string()),
            shard: info.shard.map(ShardRecord::from),
            skipped_count: tally.skipped,
            started_at: Some(rfc3339(info.started_at)),
            success_count: tally.success,
            success_rate: tally.success_rate(),
            total_duration_ms: tally.total_duration_ms,
            total_runs: tally.total,
            total_tokens: tally.total_tokens,
            wall_time_ms: (info.completed_at - info.started_at)
                .whole_milliseconds()
                .max(0) as u64,
        }
    }

    /// Reads `dir`'s summary. A file that is JSON but not an object reads
    /// as an empty summary, as the untyped reader saw it.
    pub(crate) fn read(dir: &Path) -> Result<Summary> {
        let path = dir.join(SUMMARY);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                path: path.clone(),
                what: "result directory summary",
            },
            _ => Error::io("read", &path, e),
        })?;
        match serde_json::from_slice::<Summary>(&bytes) {
            Ok(s) => Ok(s),
            Err(e) if e.is_data() => Ok(Summary::default()),
            Err(e) => Err(Error::config(
                format!("{}: not JSON: {e}", path.display()),
                None,
            )),
        }
    }

    /// The scenario: ours records it as `scenario`, FluxLoop CLI 0.4 as `experiment_name`.
    pub(crate) fn scenario(&self) -> Option<&str> {
        text(&self.scenario).or_else(|| text(&self.experiment_name))
    }

    pub(crate) fn bundle_version_id(&self) -> Option<&str> {
        text(&self.bundle_version_id)
    }

    pub(crate) fn runner_type(&self) -> Option<&str> {
        text(&self.runner_type)
    }

    pub(crate) fn batch_key(&self) -> Option<&str> {
        text(&self.batch_key)
    }

    /// When the run started, as recorded.
    pub(crate) fn started_at(&self) -> Option<&str> {
        text(&self.started_at)
    }

    /// When the run finished, as recorded.
    pub(crate) fn completed_at(&self) -> Option<&str> {
        text(&self.completed_at)
    }

    /// When FluxLoop CLI 0.4 wrote its summary, standing in for both times.
    pub(crate) fn created_at(&self) -> Option<&str> {
        text(&self.created_at)
    }

    /// `started_at` as a time.
    pub(crate) fn started(&self) -> Option<OffsetDateTime> {
        parse_time(self.started_at())
    }

    /// `completed_at` as a time.
    pub(crate) fn completed(&self) -> Option<OffsetDateTime> {
        parse_time(self.completed_at())
    }

    pub(crate) fn shard(&self) -> Option<Shard> {
        self.shard.as_ref().and_then(ShardRecord::shard)
    }
}

fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s?, &Rfc3339).ok()
}

/// `errors.json`: FluxLoop CLI 0.4's failure list, rebuilt from the trace.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ErrorsFile {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) created_at: String,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) experiment_name: String,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) failure_count: usize,
    #[serde(default)]
    pub(crate) failures: Vec<Failure>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) runner_type: String,
}

/// One failed run of `errors.json`.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Failure {
    #[serde(default)]
    pub(crate) duration_ms: u64,
    #[serde(default)]
    pub(crate) error: FailureError,
    #[serde(default)]
    pub(crate) input: String,
    #[serde(default)]
    pub(crate) iteration: u32,
    #[serde(default)]
    pub(crate) persona: Option<String>,
    #[serde(default)]
    pub(crate) run_id: String,
    #[serde(default)]
    pub(crate) timestamp: String,
}

/// `error` of a failure: FluxLoop CLI 0.4's message and (always null here)
/// Python traceback, plus the agent's stderr tail when there was one.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct FailureError {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stderr: Option<String>,
    #[serde(default)]
    pub(crate) traceback: Option<String>,
}

impl Failure {
    /// The failure of `r`, when it failed.
    fn of(r: &TraceRecord) -> Option<Failure> {
        let message = r.error_message()?;
        Some(Failure {
            duration_ms: r.duration_ms,
            error: FailureError {
                message: message.to_string(),
                stderr: r.error.as_ref().and_then(|e| e.stderr.clone()),
                traceback: None,
            },
            input: r.input.clone(),
            iteration: r.iteration,
            persona: r.persona.clone(),
            run_id: r.run_id.clone(),
            timestamp: r.timestamp.clone(),
        })
    }
}

/// `summary.json`, rewritten at the end of the run: a kill then must leave
/// the first version whole, not a torn file.
pub(crate) fn write_summary(dir: &Path, info: &RunInfo<'_>, tally: &Tally) -> Result<()> {
    let doc = Summary::new(info, tally);
    let path = dir.join(SUMMARY);
    crate::atomic_file::write_atomic(&path, 0o644, |f| {
        let mut w = BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &doc)?;
        w.write_all(b"\n")?;
        w.flush()
    })
    .map_err(|e| Error::io("write", &path, e))
}

/// `errors.json`, rebuilt from the trace file; returns how many runs failed.
pub(crate) fn write_errors(dir: &Path, info: &RunInfo<'_>) -> Result<usize> {
    let mut failures = Vec::new();
    read_trace(dir, |r| {
        failures.extend(Failure::of(&r));
        Ok(())
    })?;
    let doc = ErrorsFile {
        created_at: rfc3339(info.completed_at),
        experiment_name: info.scenario.to_string(),
        failure_count: failures.len(),
        failures,
        runner_type: info.runner_type.to_string(),
    };
    let path = dir.join(ERRORS);
    let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &doc)
        .map_err(std::io::Error::from)
        .and_then(|_| w.write_all(b"\n"))
        .and_then(|_| w.flush())
        .map_err(|e| Error::io("write", &path, e))?;
    Ok(doc.failure_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{TraceError, TraceWriter, TRACE};

    fn info(complete: bool) -> RunInfo<'static> {
        RunInfo {
            scenario: "bot",
            runner_type: "process",
            bundle_version_id: Some("bv1"),
            started_at: OffsetDateTime::from_unix_timestamp(1_704_164_645).unwrap(),
            completed_at: OffsetDateTime::from_unix_timestamp(1_704_164_647).unwrap(),
            iterations: 2,
            parallel: 3,
            interrupted: false,
            complete,
            batch_key: Some("gitlab:1:bot"),
            shard: limits::shard_of(2, 4).ok(),
        }
    }

    /// The bytes the `json!` writer produced before, kept as the contract.
    #[test]
    fn summary_bytes_are_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let mut tally = Tally::default();
        tally.add(&TraceRecord {
            run_id: "r1".into(),
            success: true,
            duration_ms: 7,
            ..Default::default()
        });
        write_summary(tmp.path(), &info(true), &tally).unwrap();
        let got = std::fs::read_to_string(tmp.path().join(SUMMARY)).unwrap();
        let want = format!(
            r#"{{
  "batch_key": "gitlab:1:bot",
  "bundle_version_id": "bv1",
  "cli": "fluxloop-rs {}",
  "complete": true,
  "completed_at": "2024-01-02T03:04:07Z",
  "created_at": "2024-01-02T03:04:07Z",
  "experiment_name": "bot",
  "failure_count": 0,
  "flaky_count": 0,
  "interrupted": false,
  "iterations": 2,
  "parallel": 3,
  "runner_type": "process",
  "scenario": "bot",
  "shard": {{
    "index": 2,
    "total": 4
  }},
  "skipped_count": 0,
  "started_at": "2024-01-02T03:04:05Z",
  "success_count": 1,
  "success_rate": 1.0,
  "total_duration_ms": 7,
  "total_runs": 1,
  "total_tokens": 0,
  "wall_time_ms": 2000
}}
"#,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(got, want);
        let back = Summary::read(tmp.path()).unwrap();
        assert_eq!(back.scenario(), Some("bot"));
        assert_eq!(back.shard(), limits::shard_of(2, 4).ok());
        assert_eq!(back.complete, Some(true));
        assert_eq!(back.started(), Some(info(true).started_at));
    }

    #[test]
    fn a_fluxloop_0_4_summary_reads_with_its_own_types() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(SUMMARY),
            r#"{"experiment_name": "bot", "runner_type": "python-function", "total_runs": 2,
                "total_duration_ms": 12.5, "success_rate": 0.5, "created_at": "2024-01-02T03:04:05Z",
                "iterations": "many", "shard": {"index": "x"}}"#,
        )
        .unwrap();
        let s = Summary::read(tmp.path()).unwrap();
        assert_eq!(s.scenario(), Some("bot"));
        assert_eq!(s.runner_type(), Some("python-function"));
        assert_eq!((s.total_runs, s.total_duration_ms), (2, 0));
        assert_eq!(s.iterations, None);
        assert_eq!(s.complete, None);
        assert_eq!(s.shard(), None);
        assert_eq!(s.created_at(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(s.started_at(), None);
    }

    #[test]
    fn a_summary_that_is_not_json_is_an_error_and_not_an_object_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SUMMARY), "{").unwrap();
        let err = Summary::read(tmp.path()).unwrap_err().to_string();
        assert!(
            err.ends_with("summary.json: not JSON: EOF while parsing an object at line 1 column 1"),
            "{err}"
        );
        std::fs::write(tmp.path().join(SUMMARY), "[1]").unwrap();
        assert_eq!(Summary::read(tmp.path()).unwrap().scenario(), None);
        std::fs::remove_file(tmp.path().join(SUMMARY)).unwrap();
        assert!(matches!(
            Summary::read(tmp.path()),
            Err(Error::MissingFile { .. })
        ));
    }

    #[test]
    fn errors_bytes_are_unchanged_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = TraceWriter::create(tmp.path()).unwrap();
        w.append(&TraceRecord {
            run_id: "ok".into(),
            success: true,
            ..Default::default()
        })
        .unwrap();
        w.append(&TraceRecord {
            run_id: "r2".into(),
            input: "hi".into(),
            iteration: 1,
            duration_ms: 3,
            timestamp: "t".into(),
            error: Some(TraceError {
                message: "boom".into(),
                stderr: Some("trace".into()),
            }),
            ..Default::default()
        })
        .unwrap();
        drop(w);
        assert!(tmp.path().join(TRACE).is_file());
        assert_eq!(write_errors(tmp.path(), &info(true)).unwrap(), 1);
        let got = std::fs::read_to_string(tmp.path().join(ERRORS)).unwrap();
        let want = r#"{
  "created_at": "2024-01-02T03:04:07Z",
  "experiment_name": "bot",
  "failure_count": 1,
  "failures": [
    {
      "duration_ms": 3,
      "error": {
        "message": "boom",
        "stderr": "trace",
        "traceback": null
      },
      "input": "hi",
      "iteration": 1,
      "persona": null,
      "run_id": "r2",
      "timestamp": "t"
    }
  ],
  "runner_type": "process"
}
"#;
        assert_eq!(got, want);
        let back: ErrorsFile = serde_json::from_str(&got).unwrap();
        assert_eq!(back.failure_count, 1);
        assert_eq!(back.failures[0].error.stderr.as_deref(), Some("trace"));
    }
}
