//! Kill tests: `fluxloop test` killed mid-run (SIGTERM, SIGKILL) leaves the
//! finished runs on disk as valid JSONL and no agent behind (after a SIGKILL
//! its reaper kills each agent's group, the agents' own children included),
//! and a finished run leaves no reaper; a later `sync upload` stores exactly
//! those runs, once. `auth refresh` killed at
//! any moment leaves a credentials file that is either the old one or the
//! complete new one.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{alive, gone_within, jsonl, login, newest_result_dir, setup, signal, Fx};

/// An agent that records its pid, then answers at once for iteration 0 and
/// sleeps (as itself, via exec, or through a child) for iteration 1.
fn agent(pids: &Path, grandchild: bool) -> String {
    let slow = if grandchild {
        // A child of the agent in the agent's process group.
        format!("sleep 30 & echo $! > {}/child.$$; wait", pids.display())
    } else {
        "exec sleep 30".to_string()
    };
    format!(
        r#"echo $$ > {}/agent.$$; read -r line; case "$line" in *'"iteration":1'*) {slow};; esac; echo '{{"success":true,"output":"ok"}}'"#,
        pids.display()
    )
}

fn start_test(fx: &Fx, pids: &Path, grandchild: bool) -> Child {
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    std::fs::create_dir_all(pids).unwrap();
    fx.cmd(&[
        "test",
        "--skip-pull",
        "--skip-upload",
        "--iterations",
        "2",
        "--parallel",
        "3",
        "--timeout",
        "60",
        "--",
        "sh",
        "-c",
    ])
    .arg(agent(pids, grandchild))
    .command()
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// Waits until the 10 fast runs are on disk and 3 slow agents are running.
fn wait_mid_run(fx: &Fx, pids: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let root = fx.sb.work().join(".fluxloop/results");
        // results/ is created a moment before the run's directory in it.
        let started = std::fs::read_dir(&root)
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())));
        let trace = started.then(|| newest_result_dir(&fx.sb).join("trace_summary.jsonl"));
        let lines = trace
            .as_ref()
            .and_then(|t| std::fs::read_to_string(t).ok())
            .map_or(0, |s| s.lines().count());
        let agents = std::fs::read_dir(pids).unwrap().count();
        if lines >= 10 && agents >= 13 {
            return trace.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "never reached mid-run ({lines} runs, {agents} agents)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pids_in(dir: &Path, prefix: &str) -> Vec<i32> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            name.starts_with(prefix).then(|| {
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
        })
        .collect()
}

/// Waits until `n` files `prefix*` in `dir` hold a pid each.
fn wait_pid_files(dir: &Path, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                name.starts_with(prefix)
                    .then(|| std::fs::read_to_string(e.path()).unwrap_or_default())
            })
            .filter(|s| s.trim().parse::<i32>().is_ok())
            .count();
        if ready >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{ready} of {n} {prefix} files");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reaper `fluxloop test` (pid `parent`) forked: its child named
/// `fluxloop-reaper`. Returns its pid and process group.
fn reaper_of(parent: u32) -> Option<(i32, i32)> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        // state ppid pgrp ...
        let f: Vec<&str> = rest.split(' ').collect();
        (head.ends_with("(fluxloop-reaper") && f.get(1)? == &parent.to_string())
            .then(|| Some((pid, f.get(2)?.parse().ok()?)))
            .flatten()
    })
}

fn wait_reaper(parent: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((pid, pgrp)) = reaper_of(parent) {
            // Its own group: a signal to the job's group does not reach it.
            assert_eq!(pgrp, pid, "the reaper is not in its own process group");
            return pid;
        }
        assert!(Instant::now() < deadline, "no reaper under {parent}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fluxloop did not exit within 10 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// After the kill: valid JSONL with the finished runs, no agent left, and an
/// upload that stores exactly those runs, once, even when repeated.
fn check_after(fx: &Fx, trace: &Path, pids: &Path) {
    for pid in pids_in(pids, "agent.")
        .into_iter()
        .chain(pids_in(pids, "child."))
    {
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "agent process {pid} survived"
        );
    }
    let records = jsonl(trace);
    assert!(records.len() >= 10, "{} runs on disk", records.len());
    let n = records.len();
    let dir = trace.parent().unwrap().to_str().unwrap().to_string();
    // The second upload finds the same results stored (issue 16, item 13).
    for first_words in [
        format!("Uploaded {n} runs"),
        format!("Already uploaded: these {n} runs"),
    ] {
        fx.cmd(&["sync", "upload", "--result-dir", &dir])
            .run()
            .ok()
            // substring: the rest is the platform-generated batch id and the server URL
            .stdout_has(&first_words);
    }
    fx.assert_stored_once(n);
}

#[test]
fn sigterm_mid_run_keeps_finished_runs_and_kills_every_agent_group() {
    let fx = setup(0);
    let pids = fx.sb.dir.path().join("pids");
    let mut child = start_test(&fx, &pids, true);
    let trace = wait_mid_run(&fx, &pids);
    signal(child.id(), libc::SIGTERM);
    let status = wait_exit(&mut child);
    assert_ne!(status.code(), Some(0), "{status:?}");
    check_after(&fx, &trace, &pids);
}

#[test]
fn sigkill_mid_run_keeps_finished_runs_and_leaves_no_agent() {
    let fx = setup(0);
    let pids = fx.sb.dir.path().join("pids");
    let mut child = start_test(&fx, &pids, false);
    let trace = wait_mid_run(&fx, &pids);
    signal(child.id(), libc::SIGKILL);
    wait_exit(&mut child);
    check_after(&fx, &trace, &pids);
}

#[test]
fn sigkill_mid_run_kills_each_agent_group_children_included() {
    let fx = setup(0);
    let pids = fx.sb.dir.path().join("pids");
    let mut child = start_test(&fx, &pids, true);
    let trace = wait_mid_run(&fx, &pids);
    // The three slow agents have each started a background `sleep` in
    // their group; fluxloop never sees those.
    wait_pid_files(&pids, "child.", 3);
    let reaper = wait_reaper(child.id());
    signal(child.id(), libc::SIGKILL);
    wait_exit(&mut child);
    // check_after: every agent and every agent's child is gone within 5 s.
    check_after(&fx, &trace, &pids);
    assert!(
        gone_within(reaper, Duration::from_secs(5)),
        "the reaper {reaper} outlived fluxloop"
    );
}

#[test]
fn a_finished_run_leaves_no_reaper() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    let gate = fx.sb.dir.path().join("gate");
    let mut child = fx
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--parallel",
            "2",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            r#"read -r line; while [ ! -e {} ]; do sleep 0.02; done; echo '{{"success":true,"output":"ok"}}'"#,
            gate.display()
        ))
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reaper = wait_reaper(child.id());
    std::fs::write(&gate, "").unwrap();
    let status = wait_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // substring: an absence, which must hold anywhere in the text
    assert!(!stderr.contains("reaper"), "{stderr}");
    // fluxloop closed the pipe and waited for the reaper before returning.
    assert!(!alive(reaper), "the reaper {reaper} outlived its run");
}

#[test]
fn sigkill_at_random_moments_never_tears_the_trace() {
    // Many short runs; the kill lands anywhere, including mid-append.
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    for i in 0..8u64 {
        let mut child = fx
            .cmd(&[
                "test",
                "--skip-pull",
                "--skip-upload",
                "--iterations",
                "50",
                "--parallel",
                "4",
                "--",
                "echo",
                crate::fixtures::ECHO_OK,
            ])
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // sleep: the kill lands at a swept moment of the run; the delay is the test.
        std::thread::sleep(Duration::from_millis(150 + 60 * i));
        signal(child.id(), libc::SIGKILL);
        wait_exit(&mut child);
    }
    let root = fx.sb.work().join(".fluxloop/results");
    let mut total = 0;
    let mut dirs = 0;
    for e in std::fs::read_dir(root).unwrap() {
        let trace = e.unwrap().path().join("trace_summary.jsonl");
        if trace.exists() {
            // A torn last line is possible in principle (one write per
            // record), but every complete line must be valid.
            let text = std::fs::read_to_string(&trace).unwrap();
            let complete = text.rfind('\n').map_or("", |i| &text[..i]);
            for l in complete.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
            total += complete.lines().count();
            dirs += 1;
        }
    }
    assert!(dirs >= 1 && total > 0, "{dirs} dirs, {total} runs");
}

#[test]
fn refresh_killed_during_the_credentials_write_leaves_old_or_new() {
    let fx = setup(0);
    let sb = &fx.sb;
    login(sb, &fx.p, &[]).ok();
    let path = sb.credentials_path();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut outcomes = [0usize; 3]; // old kept, new written, relogin needed
    let started = Instant::now();
    for _ in 0..30 {
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let old = std::fs::read(&path).unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % 15_000);
        let mut child = sb
            .cmd(&["auth", "refresh"])
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // sleep: a random moment to kill at is the test.
        std::thread::sleep(delay);
        signal(child.id(), libc::SIGKILL);
        wait_exit(&mut child);
        let now = std::fs::read(&path).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&now)
            .unwrap_or_else(|e| panic!("credentials torn after a kill at {delay:?}: {e}"));
        let p = &v["profiles"]["default"];
        assert!(
            p["access_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("flx_at_")),
            "{v}"
        );
        assert!(
            p["refresh_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("flx_refresh_")),
            "{v}"
        );
        if now == old {
            outcomes[0] += 1;
        } else {
            outcomes[1] += 1;
        }
        // The file is usable: a refresh works, or (killed after the platform
        // rotated the refresh token, before the write) says to log in again.
        let r = sb.cmd(&["auth", "refresh"]).run();
        if r.code != Some(0) {
            assert_eq!(r.code(3).stderr, "error: Token expired: the login of profile default has expired and its refresh token is no longer valid\n  hint: run `fluxloop auth login` to log in again\n");
            outcomes[2] += 1;
            login(sb, &fx.p, &[]).ok();
        }
    }
    // No temp file (holding tokens) survives the next successful write.
    let leftovers: Vec<_> = std::fs::read_dir(sb.fluxloop_home())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!(
        "refresh kills: {} left the old file, {} the new one, {} needed a new login",
        outcomes[0], outcomes[1], outcomes[2]
    );
}
