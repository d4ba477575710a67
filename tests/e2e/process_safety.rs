//! Issue 13, runner and process: the exit code survives a closed stdout,
//! and signals end the pull and upload phases at once with the resume
//! command.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fluxloop_platform::Fault;

use crate::fixtures::{jsonl, newest_result_dir, setup, signal, Fx, ECHO_OK};

#[test]
fn regression_13_a_closed_stdout_keeps_the_failed_runs_exit_code() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    for json in [false, true] {
        // A pipe whose reader is already gone: `fluxloop test | head` once
        // head has exited.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut args = vec!["test", "--skip-pull", "--skip-upload"];
        if json {
            args.push("--json");
        }
        let out = fx
            .cmd(&args)
            .arg("--")
            .arg("echo")
            .arg(r#"{"success":false,"error":"nope"}"#)
            .command()
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(10), "--json {json}: {stderr}");
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The `[profile.NAME]` sections of Cargo.toml that set `panic = "abort"`.
fn aborting_profiles(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if line.replace(' ', "") == "panic=\"abort\"" {
            found.push(section.clone());
        }
    }
    found
}

#[test]
fn regression_13_only_the_shipped_binary_aborts_on_panic() {
    // Release builds of the platform (bench, demo) and the runner must
    // unwind so their catch_unwind and join-a-panicked-thread paths live.
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    assert_eq!(aborting_profiles(&manifest), vec!["profile.dist"]);
    let script = std::fs::read_to_string(format!("{root}/scripts/release-build")).unwrap();
    assert!(
        script.contains("build --profile dist --locked"),
        "release-build must build the dist profile"
    );
}

/// A running `fluxloop` whose stderr is collected as it comes.
struct Live {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Live {
    fn start(cmd: crate::util::Cmd) -> Live {
        use std::io::Read;
        let mut child = cmd
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Live { child, stderr }
    }

    /// Waits (at most 30 s) until stderr contains `text`.
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // substring: waits for a line to appear while the process still runs
        while !self.stderr.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "never printed {text:?}: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` and returns the exit code, how long it took, and stderr.
    fn stop(mut self, sig: i32) -> (Option<i32>, Duration, String) {
        let sent = Instant::now();
        signal(self.child.id(), sig);
        let deadline = sent + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("fluxloop did not exit within 20 s of the signal");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = sent.elapsed();
        // The reader thread sees EOF once the process is gone.
        let end = Instant::now() + Duration::from_secs(5);
        while std::sync::Arc::strong_count(&self.stderr) > 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = self.stderr.lock().unwrap().clone();
        (status.code(), took, text)
    }
}

/// The request in flight stalls far longer than the 2 s allowed.
/// Whether a process whose parent is `parent` runs the program `name`.
fn has_child_named(parent: u32, name: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        head.ends_with(&format!("({name}"))
            && rest.split(' ').nth(1) == Some(parent.to_string().as_str())
    })
}

fn stall(fx: &Fx, path: &str) {
    fx.p.inject_faults(path, vec![Fault::Stall(Duration::from_secs(40))]);
}

fn slow_client(cmd: crate::util::Cmd) -> crate::util::Cmd {
    cmd.env("FLUXLOOP_HTTP_TIMEOUT", "60")
}

#[test]
fn regression_13_sigterm_during_sync_upload_exits_143_at_once_with_the_resume_command() {
    let fx = setup(0);
    let dir = fx.results("support-bot");
    let rel = dir
        .strip_prefix(fx.sb.work())
        .unwrap()
        .display()
        .to_string();
    stall(&fx, "/api/sync/upload");
    let live = Live::start(slow_client(
        fx.cmd(&["sync", "upload", "--result-dir"]).arg(&rel),
    ));
    live.wait_for("Uploading");
    // sleep: the signal must land while the stalled request is in flight;
    // the platform records a request only once it answers (after the 40 s
    // stall), so there is nothing to poll, and 300 ms is well inside it.
    std::thread::sleep(Duration::from_millis(300));
    let (code, took, stderr) = live.stop(libc::SIGTERM);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        stderr,
        format!("Uploading {rel}\nwarning: interrupted by SIGTERM while uploading; the results are kept in {rel}; resume with `fluxloop sync upload --result-dir {rel}`\n")
    );
    // The printed command finishes the job, exactly once.
    fx.cmd(&["sync", "upload", "--result-dir", &rel])
        .run()
        .ok()
        // substring: the rest is the platform-generated batch id and the server URL
        .stdout_has("Uploaded 10 runs");
    fx.assert_stored_once(10);
}

#[test]
fn regression_13_sigint_during_the_upload_phase_of_test_exits_130_and_keeps_the_results() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    stall(&fx, "/api/sync/upload");
    let live = Live::start(slow_client(fx.cmd(&[
        "test",
        "--skip-pull",
        "--",
        "echo",
        ECHO_OK,
    ])));
    live.wait_for("Uploading 10 runs");
    // sleep: the signal must land inside the stalled upload (see above).
    std::thread::sleep(Duration::from_millis(300));
    let (code, took, stderr) = live.stop(libc::SIGINT);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let dir = newest_result_dir(&fx.sb);
    let rel = dir
        .strip_prefix(fx.sb.work())
        .unwrap()
        .display()
        .to_string();
    // The lines before are the run's progress; the last one is exact.
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!("warning: interrupted by SIGINT while uploading; the results are kept in {rel}; resume with `fluxloop sync upload --result-dir {rel}`")
    );
    assert_eq!(jsonl(&dir.join("trace_summary.jsonl")).len(), 10);
}

#[test]
fn regression_13_sigint_during_sync_pull_exits_130_at_once() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let pulled = fx
        .sb
        .work()
        .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
    let before = std::fs::read(&pulled).unwrap();
    stall(&fx, "/api/sync/pull");
    let seen = fx.p.requests().len();
    let live = Live::start(slow_client(fx.cmd(&["sync", "pull", "--yes"])));
    // The pull request is in flight right after the project is resolved
    // (the project is resolved just before; requests are recorded when answered).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fx.p.requests()[seen..]
        .iter()
        .any(|r| r.path == "/api/projects")
    {
        assert!(Instant::now() < deadline, "no pull started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // sleep: the signal must land inside the stalled pull request, which
    // the platform records only once it answers; nothing to poll.
    std::thread::sleep(Duration::from_millis(300));
    let (code, took, stderr) = live.stop(libc::SIGINT);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        stderr,
        "warning: interrupted by SIGINT while pulling; pulled/ is left as it was or holds the new bundle whole\n"
    );
    assert_eq!(std::fs::read(&pulled).unwrap(), before);
}

#[test]
fn regression_13_sigterm_during_the_runs_exits_143_with_the_upload_command() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let live = Live::start(fx.cmd(&[
        "test",
        "--skip-pull",
        "--skip-upload",
        "--timeout",
        "60",
        "--",
        "sh",
        "-c",
        "exec sleep 30",
    ]));
    live.wait_for("Running 10 runs");
    // The signal must find an agent running, not one about to be spawned.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_child_named(live.child.id(), "sleep") {
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, took, stderr) = live.stop(libc::SIGTERM);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let dir = newest_result_dir(&fx.sb);
    let rel = dir
        .strip_prefix(fx.sb.work())
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        stderr,
        format!("Running 10 runs (10 inputs × 1 iteration, 1 at a time, timeout 60.0 s) with `sh -c exec sleep 30`\nwarning: stopped after 0 of 10 runs; finished runs are in {rel}; upload them with `fluxloop sync upload --result-dir {rel}`\nerror: cancelled\n")
    );
}
