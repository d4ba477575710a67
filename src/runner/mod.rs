//! Executing the agent (process and function runners).
//!
//! [`run`] executes inputs × iterations, `parallel` at a time on a bounded
//! set of worker threads, and hands each [`Finished`] run to a sink on the
//! calling thread the moment it ends (the sink appends it to
//! `trace_summary.jsonl`, so a crash loses nothing finished and memory stays
//! flat). It does no HTTP and prints nothing. A failing agent is data: its
//! [`Outcome`] says how it ended.

pub(crate) mod function;
mod pace;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod select;
mod worker;

pub(crate) use select::Slot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pulled::Input;

/// How to start one run of the agent.
#[derive(Clone, Debug)]
pub(crate) struct Agent {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    /// The working directory of every run.
    pub(crate) cwd: PathBuf,
    /// Variables added to the inherited environment.
    pub(crate) env: BTreeMap<String, String>,
    /// Per-run time limit; the whole process group is killed after it.
    pub(crate) timeout: Duration,
}

impl Agent {
    /// Fails unless the program can be started (see [`resolve_program`]).
    /// Checked before the first run, so a typo is one configuration error,
    /// not a failed run per input uploaded as results.
    pub(crate) fn check_runnable(
        &self,
        path: Option<&std::ffi::OsStr>,
    ) -> crate::error::Result<()> {
        use crate::error::Error;
        let hint =
            || Some("check runner.command in fluxloop.yaml, or the command after `--`".to_string());
        // runner.env may set the agent's own PATH.
        let path = self.env.get("PATH").map(std::ffi::OsStr::new).or(path);
        match resolve_program(&self.program, &self.cwd, path) {
            Ok(_) => Ok(()),
            Err(Unrunnable::Empty | Unrunnable::Missing(_)) if self.program.contains('/') => {
                Err(Error::config(
                    format!("the agent command {} does not exist", self.program),
                    hint(),
                ))
            }
            Err(Unrunnable::NotExecutable(_)) => Err(Error::config(
                format!(
                    "the agent command {} is not an executable file",
                    self.program
                ),
                Some(format!(
                    "make it executable (chmod +x {}), or run it through its interpreter",
                    self.program
                )),
            )),
            Err(_) => Err(Error::config(
                format!("the agent command {} is not on PATH", self.program),
                hint(),
            )),
        }
    }

    /// The command line, for messages.
    pub(crate) fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a program cannot be started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unrunnable {
    Empty,
    /// A path that does not exist.
    Missing(PathBuf),
    /// A path that is not an executable file.
    NotExecutable(PathBuf),
    /// A bare name found on no `PATH` directory.
    NotOnPath,
}

/// A program as `execvp` finds it: a path (relative to `dir`) if it has a
/// `/`, else the first executable file of that name on `path`.
pub(crate) fn resolve_program(
    program: &str,
    dir: &std::path::Path,
    path: Option<&std::ffi::OsStr>,
) -> std::result::Result<PathBuf, Unrunnable> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err(Unrunnable::Empty);
    }
    if program.contains('/') {
        let p: PathBuf = dir
            .join(program)
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        return match p.metadata() {
            Err(_) => Err(Unrunnable::Missing(p)),
            Ok(_) if !executable(&p) => Err(Unrunnable::NotExecutable(p)),
            Ok(_) => Ok(p),
        };
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or(Unrunnable::NotOnPath)
}

/// What to run.
pub(crate) struct Plan<'a> {
    pub(crate) agent: Agent,
    pub(crate) scenario: String,
    pub(crate) inputs: &'a [Input],
    pub(crate) iterations: u32,
    pub(crate) parallel: usize,
    /// Kills the running agents' groups if `fluxloop` dies (SIGKILL
    /// included); `None` if it could not be started.
    pub(crate) reaper: Option<&'a reaper::Reaper>,
    /// The runs chosen (`--input`, `--last-failed`…), in order; `None`:
    /// every input × iteration.
    pub(crate) slots: Option<&'a [Slot]>,
    /// How often a failed run is tried again.
    pub(crate) retries: u32,
    /// No new run starts once this many runs have failed.
    pub(crate) max_failures: Option<usize>,
    /// At least this long between two run starts (retries included).
    pub(crate) start_interval: Option<Duration>,
}

impl Plan<'_> {
    pub(crate) fn total(&self) -> usize {
        match self.slots {
            Some(s) => s.len(),
            None => self.inputs.len() * self.iterations as usize,
        }
    }

    /// The `i`th run of the plan.
    pub(crate) fn slot(&self, i: usize) -> Slot {
        match self.slots {
            Some(s) => s[i],
            // Iteration-major order, as FluxLoop CLI 0.4 runs them.
            None => Slot {
                iteration: (i / self.inputs.len()) as u32,
                input: i % self.inputs.len(),
            },
        }
    }
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signalled(i32),
    /// It ran past the time limit; its process group was killed.
    TimedOut(Duration),
    /// It could not be started.
    SpawnFailed(String),
}

/// The agent's result line (CLI.md §5), read leniently.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Reply {
    pub(crate) success: bool,
    pub(crate) output: String,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) token_usage: Option<TokenUsage>,
    pub(crate) turn_count: Option<u64>,
    pub(crate) error: Option<String>,
    pub(crate) metadata: Option<Value>,
}

/// `token_usage` as FluxLoop CLI 0.4 records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct TokenUsage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl Reply {
    /// Reads a result object; anything not a JSON object is no result.
    pub(crate) fn from_value(v: &Value) -> Option<Reply> {
        let o = v.as_object()?;
        let num = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
        };
        let output = match o.get("output") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let error = o.get("error").and_then(|e| match e {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(m) => m
                .get("message")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            _ => None,
        });
        let token_usage = o.get("token_usage").and_then(Value::as_object).map(|t| {
            let get = |k: &str| t.get(k).and_then(num).unwrap_or(0);
            let (i, out) = (get("input_tokens"), get("output_tokens"));
            let total = t
                .get("total_tokens")
                .and_then(num)
                .unwrap_or(i.saturating_add(out));
            TokenUsage {
                input_tokens: i,
                output_tokens: out,
                total_tokens: total,
            }
        });
        Some(Reply {
            success: o.get("success").and_then(Value::as_bool).unwrap_or(false),
            output,
            duration_ms: o.get("duration_ms").and_then(num),
            token_usage,
            turn_count: o.get("turn_count").and_then(num),
            error,
            metadata: o.get("metadata").filter(|m| m.is_object()).cloned(),
        })
    }
}

/// The last line of `stdout` that parses as a JSON object.
pub(crate) fn result_line(stdout: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| Reply::from_value(&v))
        })
}

/// One finished run.
#[derive(Clone, Debug)]
pub(crate) struct Finished {
    pub(crate) run_id: String,
    pub(crate) iteration: u32,
    /// Index into the plan's inputs.
    pub(crate) input: usize,
    pub(crate) started_at: OffsetDateTime,
    /// Wall time measured by us.
    pub(crate) elapsed: Duration,
    pub(crate) outcome: Outcome,
    pub(crate) reply: Option<Reply>,
    /// The last bytes of stdout when no result line was found, for the reason.
    pub(crate) stdout_tail: String,
    /// The last bytes of stderr.
    pub(crate) stderr_tail: String,
    /// How many times it was started (1 without retries).
    pub(crate) attempts: u32,
    /// Why each earlier attempt failed, oldest first.
    pub(crate) failed_attempts: Vec<FailedAttempt>,
}

/// An attempt that failed and was retried.
#[derive(Clone, Debug)]
pub(crate) struct FailedAttempt {
    pub(crate) message: String,
    pub(crate) stdout_tail: String,
    pub(crate) stderr_tail: String,
}

impl Finished {
    /// Success, or why the run failed.
    pub(crate) fn verdict(&self) -> std::result::Result<(), String> {
        let tail = |s: &str| {
            let s = s.trim();
            if s.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", last_line(s))
            }
        };
        match &self.outcome {
            Outcome::SpawnFailed(why) => Err(format!("cannot start the agent: {why}")),
            Outcome::TimedOut(limit) => Err(format!(
                "timed out after {}; the agent's process group was killed{}",
                secs(*limit),
                tail(&self.stderr_tail)
            )),
            Outcome::Signalled(sig) => Err(format!(
                "the agent was killed by signal {sig}{}{}",
                signal_name(*sig)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                tail(&self.stderr_tail)
            )),
            Outcome::Exited(code) if *code != 0 => {
                let reported = self
                    .reply
                    .as_ref()
                    .and_then(|r| r.error.clone())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                Err(format!(
                    "the agent exited with code {code}{reported}{}",
                    tail(&self.stderr_tail)
                ))
            }
            Outcome::Exited(_) => match &self.reply {
                None if self.stdout_tail.trim().is_empty() => Err(format!(
                    "the agent printed nothing on stdout (expected a JSON result line){}",
                    tail(&self.stderr_tail)
                )),
                None => Err(format!(
                    "the agent printed no JSON result line on stdout (last output: {:?}){}",
                    truncate(last_line(self.stdout_tail.trim()), 200),
                    tail(&self.stderr_tail)
                )),
                Some(r) if !r.success => Err(match &r.error {
                    Some(e) => e.clone(),
                    None => "the agent reported \"success\": false".into(),
                }),
                Some(_) => Ok(()),
            },
        }
    }

    /// The duration recorded: the agent's own figure when it reports one.
    pub(crate) fn duration_ms(&self) -> u64 {
        self.reply
            .as_ref()
            .and_then(|r| r.duration_ms)
            .filter(|_| self.verdict().is_ok())
            .unwrap_or(self.elapsed.as_millis() as u64)
    }
}

fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGBUS => "SIGBUS",
        _ => return None,
    })
}

/// The JSON line written to the agent's stdin (CLI.md §5). `persona` stays
/// the id, as FluxLoop CLI 0.4 sends it; its name and description go beside.
pub(crate) fn request_line(run_id: &str, input: &Input, iteration: u32, scenario: &str) -> Vec<u8> {
    let mut req = serde_json::json!({
        "run_id": run_id,
        "input_text": input.text,
        "context": {
            "iteration": iteration,
            "persona": input.persona,
            "scenario": scenario,
            "metadata": input.item.get("metadata").cloned().unwrap_or(Value::Null),
        },
    });
    if let Some((name, description)) = &input.persona_detail {
        req["context"]["persona_name"] = Value::String(name.clone());
        req["context"]["persona_description"] = Value::String(description.clone());
    }
    let mut line = req.to_string().into_bytes();
    line.push(b'\n');
    line
}

pub(crate) fn stopping() -> bool {
    crate::signals::stop_requested()
}

/// Runs the plan and hands every finished run to `sink`, in completion
/// order, on this thread. Stops early (after the running ones end) when the
/// sink fails or on Ctrl-C/SIGTERM. Returns the runs never started because
/// `max_failures` was reached.
pub(crate) fn run(
    plan: &Plan<'_>,
    sink: &mut dyn FnMut(Finished) -> Result<()>,
) -> Result<Vec<Slot>> {
    let total = plan.total();
    if total == 0 {
        return Ok(Vec::new());
    }
    // Ctrl-C / SIGTERM (a cancelled CI job) stop the run: running agents'
    // process groups are killed, finished runs stay recorded.
    crate::signals::catch(&[libc::SIGINT, libc::SIGTERM]);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let failures = AtomicUsize::new(0);
    let pacer = pace::Pacer::new(plan.start_interval);
    let workers = plan.parallel.clamp(1, total);
    let (tx, rx) = mpsc::channel::<Finished>();
    let mut sink_error = None;
    let panicked = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let tx = tx.clone();
            let shared = worker::Shared {
                plan,
                next: &next,
                abort: &abort,
                failures: &failures,
                pacer: &pacer,
            };
            handles.push(scope.spawn(move || shared.work(total, &tx)));
        }
        drop(tx);
        for finished in rx.iter() {
            if sink_error.is_some() {
                continue;
            }
            if let Err(e) = sink(finished) {
                abort.store(true, Ordering::SeqCst);
                sink_error = Some(e);
            }
        }
        // Every handle is joined; any panic counts.
        handles
            .into_iter()
            .map(|h| h.join().is_err())
            .filter(|panicked| *panicked)
            .count()
            > 0
    });
    if panicked {
        return Err(Error::Unsupported {
            what: "internal error: a runner thread panicked".into(),
            hint: Some("please report this bug".into()),
        });
    }
    if let Some(e) = sink_error {
        return Err(e);
    }
    if stopping() {
        return Err(Error::Interrupted);
    }
    let started = next.load(Ordering::SeqCst).min(total);
    Ok((started..total).map(|i| plan.slot(i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(outcome: Outcome, stdout: &str, stderr: &str) -> Finished {
        Finished {
            run_id: "r".into(),
            iteration: 0,
            input: 0,
            started_at: OffsetDateTime::UNIX_EPOCH,
            elapsed: Duration::from_millis(5),
            outcome,
            reply: result_line(stdout.as_bytes()),
            stdout_tail: stdout.into(),
            stderr_tail: stderr.into(),
            attempts: 1,
            failed_attempts: Vec::new(),
        }
    }

    #[test]
    fn the_last_json_object_line_is_the_result() {
        let out = b"starting\n{\"success\": false}\nnoise {\n[1,2]\n{\"success\": true, \"output\": \"hi\", \"duration_ms\": 12.4}\nbye\n";
        let r = result_line(out).unwrap();
        assert!(r.success);
        assert_eq!(r.output, "hi");
        assert_eq!(r.duration_ms, Some(12));
        assert_eq!(result_line(b"no json here\n[1]\n"), None);
        assert_eq!(result_line(b""), None);
        let r = result_line(br#"{"success":true,"output":{"a":1},"token_usage":{"input_tokens":3,"output_tokens":4}}"#).unwrap();
        assert_eq!(r.output, r#"{"a":1}"#);
        assert_eq!(r.token_usage.unwrap().total_tokens, 7);
    }

    #[test]
    fn verdicts_explain_failures() {
        assert_eq!(
            finished(Outcome::Exited(0), "{\"success\":true}\n", "").verdict(),
            Ok(())
        );
        let e = finished(Outcome::Exited(0), "", "boom\n")
            .verdict()
            .unwrap_err();
        assert_eq!(
            e,
            "the agent printed nothing on stdout (expected a JSON result line); stderr: boom"
        );
        let e = finished(Outcome::Exited(0), "garbage\n", "")
            .verdict()
            .unwrap_err();
        assert!(
            e.starts_with(
                "the agent printed no JSON result line on stdout (last output: \"garbage\")"
            ),
            "{e}"
        );
        let e = finished(
            Outcome::Exited(3),
            "{\"success\":true}",
            "Traceback\nValueError: x\n",
        )
        .verdict()
        .unwrap_err();
        assert_eq!(e, "the agent exited with code 3; stderr: ValueError: x");
        let e = finished(
            Outcome::Exited(0),
            r#"{"success":false,"error":{"message":"refused"}}"#,
            "",
        )
        .verdict()
        .unwrap_err();
        assert_eq!(e, "refused");
        let e = finished(Outcome::TimedOut(Duration::from_secs(2)), "", "")
            .verdict()
            .unwrap_err();
        assert_eq!(
            e,
            "timed out after 2s; the agent's process group was killed"
        );
        let e = finished(Outcome::Signalled(9), "", "")
            .verdict()
            .unwrap_err();
        assert_eq!(e, "the agent was killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn request_line_shape() {
        let mut input = Input {
            text: "hello".into(),
            id: Some("i1".into()),
            persona: Some("p1".into()),
            persona_detail: None,
            item: serde_json::json!({"id": "i1", "metadata": {"k": "v"}}),
        };
        let line = request_line("run-1", &input, 2, "support-bot");
        assert!(line.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"run_id": "run-1", "input_text": "hello",
                "context": {"iteration": 2, "persona": "p1", "scenario": "support-bot", "metadata": {"k": "v"}}})
        );
        input.persona_detail = Some(("Angry customer".into(), "wants a refund now".into()));
        let v: Value = serde_json::from_slice(&request_line("run-1", &input, 2, "s")).unwrap();
        assert_eq!(v["context"]["persona"], "p1");
        assert_eq!(v["context"]["persona_name"], "Angry customer");
        assert_eq!(v["context"]["persona_description"], "wants a refund now");
    }
}
