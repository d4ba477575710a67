//! Issue 13, upload: nothing lost, nothing half-sent. A run still going is
//! refused, changed content is never answered with an old result, requests
//! stay under 8 MiB whatever the runs hold, and damaged trace lines stop the
//! upload instead of vanishing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fluxloop_platform::Fault;

use crate::fixtures::{newest_result_dir, setup, Fx};

const UPLOAD: &str = "/api/sync/upload";

/// `path` as the CLI shows it: relative to the sandbox's work directory.
fn rel(fx: &Fx, path: &Path) -> String {
    path.strip_prefix(fx.sb.work())
        .unwrap()
        .display()
        .to_string()
}

/// Runs `sh -c script` as the agent over scenario `scenario` (already
/// pulled), without uploading; returns the result directory.
fn run_agent(fx: &Fx, scenario: &str, script: &str) -> PathBuf {
    fx.cmd(&[
        "test",
        "--scenario",
        scenario,
        "--skip-pull",
        "--skip-upload",
        "--parallel",
        "4",
        "--",
        "sh",
        "-c",
        script,
    ])
    .run()
    .ok();
    newest_result_dir(&fx.sb)
}

fn upload(fx: &Fx, dir: &Path, extra: &[&str]) -> crate::util::Run {
    let mut cmd = fx.cmd(&["sync", "upload", "--result-dir"]).arg(dir);
    for a in extra {
        cmd = cmd.arg(a);
    }
    cmd.run()
}

#[test]
fn regression_13_upload_refuses_a_run_still_going_and_the_run_then_stores_all() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let count = fx.sb.work().join("count");
    let gate = fx.sb.work().join("gate");
    std::fs::create_dir_all(&count).unwrap();
    // Four runs answer at once; the fifth waits for the gate.
    let script = format!(
        r#"read -r line; n=$(ls {c} | wc -l); touch {c}/$$; if [ "$n" -ge 4 ]; then while [ ! -e {g} ]; do sleep 0.05; done; fi; echo '{{"success":true,"output":"ok"}}'"#,
        c = count.display(),
        g = gate.display()
    );
    let mut child = fx
        .cmd(&["test", "--parallel", "1", "--timeout", "60", "--skip-pull"])
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(&script)
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let root = fx.sb.work().join(".fluxloop/results");
        // results/ is created a moment before the run's directory in it.
        let started = std::fs::read_dir(&root)
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())));
        let trace = started.then(|| newest_result_dir(&fx.sb).join("trace_summary.jsonl"));
        let lines = trace
            .as_ref()
            .and_then(|t| std::fs::read_to_string(t).ok())
            .map_or(0, |s| s.lines().count());
        if lines >= 4 {
            break trace.unwrap();
        }
        assert!(Instant::now() < deadline, "the run never got to 4 runs");
        std::thread::sleep(Duration::from_millis(20));
    };
    let dir = trace.parent().unwrap().to_path_buf();
    let r = upload(&fx, &dir, &[]);
    r.code(2);
    assert_eq!(
        r.stderr,
        format!(
            "error: the run writing {} is still going; its results are not complete\n  hint: wait for `fluxloop test` to finish: it uploads the results itself unless given --skip-upload\n",
            dir.display()
        )
    );
    assert!(fx.p.batch_ids().unwrap().is_empty());
    std::fs::write(&gate, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "test did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    fx.assert_stored_once(10);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["complete"], true);
}

#[test]
fn regression_13_more_runs_under_an_old_key_are_stored_not_replayed() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let trace = dir.join("trace_summary.jsonl");
    let full = std::fs::read_to_string(&trace).unwrap();
    let four: String = full.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&trace, four).unwrap();
    // substring: the rest is the platform-generated batch id and the server URL
    upload(&fx, &dir, &[]).ok().stdout_has("Uploaded 4 runs");
    // The same directory, now with all its runs (as a run still being
    // written when it was first uploaded would have).
    std::fs::write(&trace, &full).unwrap();
    // substring: the rest is the platform-generated batch id and the server URL
    upload(&fx, &dir, &[]).ok().stdout_has("Uploaded 10 runs");
    fx.assert_stored_once(10);
    let keys: Vec<String> =
        fx.p.requests()
            .iter()
            .filter(|r| r.path == UPLOAD)
            .filter_map(|r| r.idempotency_key.clone())
            .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "changed content must get a new key");
}

#[test]
fn regression_13_chunks_stay_under_8_mib_and_all_400_large_runs_arrive() {
    let fx = setup(400);
    fx.cmd(&["sync", "pull", "--scenario", "big", "--yes"])
        .run()
        .ok();
    let answer = fx.sb.write(
        "answer.json",
        &format!(r#"{{"success":true,"output":"{}"}}"#, "a".repeat(100_000)),
    );
    let dir = run_agent(&fx, "big", &format!("cat {}", answer.display()));
    let r = upload(&fx, &dir, &[]);
    // substring: the rest is the platform-generated batch id and the server URL
    r.ok().stdout_has("Uploaded 400 runs");
    fx.assert_stored_once(400);
    // 40 MB of runs: five requests of at most 8 MiB (82 runs fit in one).
    let uploads = fx.p.requests().iter().filter(|r| r.path == UPLOAD).count();
    assert_eq!(uploads, 5, "{r:?}");
}

#[test]
fn regression_13_a_run_larger_than_a_request_is_cut_and_marked_truncated() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    // The runner keeps 1 MiB of an agent's output, but a trace written by
    // FluxLoop CLI 0.4 (or a huge input) holds more: one run of 9 MiB.
    let trace_path = dir.join("trace_summary.jsonl");
    let big = "b".repeat(9 * 1024 * 1024);
    let text = std::fs::read_to_string(&trace_path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if i == 2 {
                v["output"] = big.clone().into();
            }
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&trace_path, lines.concat()).unwrap();
    let r = upload(&fx, &dir, &[]);
    // substring: the rest is the platform-generated batch id and the server URL
    r.ok().stdout_has("Uploaded 10 runs");
    assert_eq!(
        r.stderr,
        format!(
            "Uploading {}\nwarning: 1 run was too large for one request: its transcript was shortened in the upload (marked \"truncated\": true); {}/trace_summary.jsonl keeps it whole\n",
            rel(&fx, &dir),
            rel(&fx, &dir)
        )
    );
    let batch = fx.assert_stored_once(10);
    let results = fx.p.store().run_results(&batch).unwrap();
    let cut: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["metrics"]["truncated"] == true)
        .collect();
    assert_eq!(cut.len(), 1, "{}", cut.len());
    let sent = cut[0]["transcript"][1]["content"].as_str().unwrap();
    assert!(sent.len() < 8 * 1024 * 1024 && sent.len() > 1024 * 1024);
    assert!(big.starts_with(sent));
    // The local record keeps the whole answer.
    let trace = std::fs::read_to_string(dir.join("trace_summary.jsonl")).unwrap();
    assert!(trace.contains(&big));
}

#[test]
fn regression_13_a_413_says_which_chunk_and_what_this_client_sends() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    fx.p.inject_faults(
        UPLOAD,
        vec![Fault::Status {
            status: 413,
            retry_after: None,
        }],
    );
    let r = upload(&fx, &dir, &[]);
    r.code(1);
    let url = format!("{}{UPLOAD}", fx.p.url());
    let last = r.stderr.lines().last().unwrap();
    // The chunk's size in MiB depends on the run timings in it; the rest is exact.
    let (head, tail) = last.split_once(" runs, ").unwrap();
    assert_eq!(
        head,
        format!("error: POST {url} failed with HTTP 413 (internal_error): the platform refused chunk 1 (10")
    );
    assert!(
        tail.ends_with("this client sends at most 8 MiB per request, so ask the platform's operator to accept that"),
        "{tail}"
    );
}

/// `n` lines of `trace` replaced by text that is not a record.
fn damage(trace: &Path, lines: &[usize]) {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut out: Vec<String> = text.lines().map(String::from).collect();
    for &n in lines {
        out.insert(n - 1, "{\"run_id\": oops".into());
    }
    std::fs::write(trace, out.join("\n") + "\n").unwrap();
}

#[test]
fn regression_13_corrupt_trace_lines_stop_the_upload_with_their_numbers() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let trace = dir.join("trace_summary.jsonl");
    damage(&trace, &[3, 6, 7]);
    let r = upload(&fx, &dir, &[]);
    r.code(2);
    assert_eq!(
        r.stderr,
        format!(
            "error: {}: lines 3, 6-7 are not run records\n  hint: repair or remove them, or pass --skip-invalid to upload the other 10 runs\n",
            rel(&fx, &trace)
        )
    );
    assert!(fx.p.batch_ids().unwrap().is_empty());
    let r = upload(&fx, &dir, &["--skip-invalid"]);
    // substring: the rest is the platform-generated batch id and the server URL
    r.ok().stdout_has("Uploaded 10 runs");
    assert_eq!(
        r.stderr,
        format!(
            "warning: skipped 3 lines of {} that are not run records (--skip-invalid): 3, 6-7\nUploading {}\n",
            rel(&fx, &trace),
            rel(&fx, &dir)
        )
    );
    fx.assert_stored_once(10);
}

#[test]
fn regression_13_a_torn_last_line_is_skipped_with_a_warning() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let trace = dir.join("trace_summary.jsonl");
    let mut text = std::fs::read_to_string(&trace).unwrap();
    text.push_str("{\"run_id\":\"cut-here");
    std::fs::write(&trace, text).unwrap();
    let r = upload(&fx, &dir, &[]);
    // substring: the rest is the platform-generated batch id and the server URL
    r.ok().stdout_has("Uploaded 10 runs");
    assert_eq!(
        r.stderr,
        format!(
            "warning: skipped the cut-off last line 11 of {} (a run interrupted while it was written)\nUploading {}\n",
            rel(&fx, &trace),
            rel(&fx, &dir)
        )
    );
    fx.assert_stored_once(10);
}

#[test]
fn regression_13_a_killed_runs_directory_uploads_with_a_warning() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    // What a SIGKILL leaves: the first summary, marked incomplete, and no lock.
    let path = dir.join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(summary["complete"], true);
    summary["complete"] = false.into();
    std::fs::write(&path, summary.to_string()).unwrap();
    let r = upload(&fx, &dir, &[]);
    // substring: the rest is the platform-generated batch id and the server URL
    r.ok().stdout_has("Uploaded 10 runs");
    assert_eq!(
        r.stderr,
        format!(
            "warning: the run that wrote {} did not finish (was it killed?); uploading the runs it recorded\nUploading {}\n",
            rel(&fx, &dir),
            rel(&fx, &dir)
        )
    );
    fx.assert_stored_once(10);
}

/// Item 3: a redirect of an API call is an error naming its Location
/// (exit 4), never followed: followed, the upload POST became a GET whose
/// 200 counted as stored. The --verbose trace shows the real status.
#[test]
fn regression_13_a_redirected_upload_is_an_error_not_a_success() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let trap = {
        let gets = std::sync::Arc::clone(&gets);
        crate::trap::Trap::start(move |seen| {
            if seen.line().starts_with("POST /api/sync/upload") {
                crate::trap::Reply {
                    status: 302,
                    headers: vec![("Location".into(), "/elsewhere".into())],
                    body: String::new(),
                }
            } else if seen.line().starts_with("GET /elsewhere") {
                gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                crate::trap::json(200, r#"{"run_batch_id": "never-stored"}"#)
            } else {
                crate::trap::json(
                    404,
                    r#"{"error":{"code":"not_found","message":"no route"}}"#,
                )
            }
        })
    };
    let r = fx
        .cmd_at(
            &trap.url(),
            &["sync", "upload", "-v", "--result-dir", &rel(&fx, &dir)],
        )
        .run();
    r.code(4).no_secret(&fx.demo.key);
    let last = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect::<Vec<_>>();
    assert_eq!(
        last,
        [format!(
            "error: POST {}/api/sync/upload answered HTTP 302, a redirect to /elsewhere, which is not followed",
            trap.url()
        )]
    );
    assert!(
        r.stderr.lines().any(|l| l.starts_with("< 302 (")),
        "{}",
        r.stderr
    );
    assert_eq!(
        gets.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}
