//! Issue 17 item 6, streaming upload: with upload on, `test` sends finished
//! runs in chunks while the job still runs. Every run lands once (with a
//! batch key and shards too); a platform that goes away mid-run costs no
//! run, fails the upload as before (exit 4, the results kept) and `sync
//! upload` later stores the rest once; a job killed mid-run and rerun
//! leaves no duplicate, even killed while the platform's answer to its
//! first chunk was on the way.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fluxloop_platform::Fault;

use crate::fixtures::{fast, jsonl, newest_result_dir, setup, Fx};
use crate::util::{platform_keeping, Cmd, Sandbox};

const INPUTS: usize = 12;
/// Passes each run after 0.4 s: 12 runs take about 5 s, longer than a
/// chunk waits before it goes (2 s), so some go while the job runs.
const SLOW: &str = "read -r line; sleep 0.4; echo '{\"success\":true,\"output\":\"ok\"}'";
/// Longest any step may take here; beyond it is a hang.
const BOUND: Duration = Duration::from_secs(60);

/// A worker with the agent and the scenario pulled.
fn worker(fx: &Fx) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("agent.sh", SLOW);
    cmd(
        fx,
        &sb,
        &fx.p.url(),
        &["sync", "pull", "--scenario", "big", "--yes"],
    )
    .run()
    .ok();
    sb
}

fn cmd(fx: &Fx, sb: &Sandbox, endpoint: &str, args: &[&str]) -> Cmd {
    fast(sb.cmd(args))
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .env("FLUXLOOP_API_ENDPOINT", endpoint)
}

/// `test` of the slow agent against `endpoint`, with `extra` flags.
fn slow_test(fx: &Fx, sb: &Sandbox, endpoint: &str, extra: &[&str]) -> Child {
    spawn(slow_cmd(fx, sb, endpoint, extra))
}

fn slow_cmd(fx: &Fx, sb: &Sandbox, endpoint: &str, extra: &[&str]) -> Cmd {
    let mut args = vec!["test", "--scenario", "big", "--skip-pull"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "agent.sh"]);
    cmd(fx, sb, endpoint, &args)
}

fn spawn(cmd: Cmd) -> Child {
    cmd.command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs stored in all batches on the platform.
fn stored(fx: &Fx) -> usize {
    let batches = fx.p.batch_ids().unwrap();
    batches.iter().map(|b| fx.p.run_count(b).unwrap()).sum()
}

/// Polls until the platform holds at least one run while `child` still
/// runs; returns how many runs it held then.
fn wait_streamed(fx: &Fx, child: &mut Child) -> usize {
    let deadline = Instant::now() + BOUND;
    loop {
        let runs = stored(fx);
        let running = child.try_wait().unwrap().is_none();
        if runs > 0 {
            assert!(
                running,
                "the runs reached the platform only after the job ended"
            );
            return runs;
        }
        if !running {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the job ended before any run was streamed:\n{stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "no run was streamed in {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Exit code and stderr of `child`, bounded.
fn finish(child: Child) -> (Option<i32>, String) {
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue_17_runs_reach_the_platform_while_the_job_runs_each_once() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    let mut child = slow_test(&fx, &sb, &fx.p.url(), &[]);
    wait_streamed(&fx, &mut child);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    fx.assert_stored_once(INPUTS);
    let uploads =
        fx.p.requests()
            .iter()
            .filter(|q| q.path == "/api/sync/upload" && q.status == 200)
            .count();
    assert!(uploads >= 2, "{uploads} upload requests: nothing streamed");
    // The result files are those of an upload after the runs.
    let dir = newest_result_dir(&sb);
    assert_eq!(jsonl(&dir.join("trace_summary.jsonl")).len(), INPUTS);
    // Everything is sent: a later upload stores nothing new.
    let rel = dir.strip_prefix(sb.work()).unwrap().display().to_string();
    let again = cmd(
        &fx,
        &sb,
        &fx.p.url(),
        &["sync", "upload", "--result-dir", &rel],
    )
    .run();
    let again = again.ok();
    // substring: the rest is the platform-generated batch id and the server URL
    again.stdout_has(&format!("Already uploaded: these {INPUTS} runs"));
    fx.assert_stored_once(INPUTS);
}

#[test]
fn issue_17_two_streaming_shards_fill_one_batch_with_every_run_once() {
    let fx = setup(INPUTS);
    let workers: Vec<Sandbox> = (0..2).map(|_| worker(&fx)).collect();
    let key = "stream-7:big";
    // Two iterations: each shard runs as long as the unsharded job.
    let mut shards: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, sb)| {
            let shard = format!("{}/2", i + 1);
            let flags = [
                "--iterations",
                "2",
                "--batch-key",
                "stream-7",
                "--shard",
                &shard,
            ];
            slow_test(&fx, sb, &fx.p.url(), &flags)
        })
        .collect();
    wait_streamed(&fx, &mut shards[0]);
    for c in shards {
        let (code, stderr) = finish(c);
        assert_eq!(code, Some(0), "{stderr}");
    }
    fx.assert_each_input(key, INPUTS, 2);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
}

#[test]
fn issue_17_a_platform_gone_mid_run_costs_no_run_and_sync_upload_stores_the_rest_once() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("platform.db");
    let p = platform_keeping(Some(&db));
    let demo = p.seed_demo().unwrap();
    p.seed_scenario(&demo.project_id, "big", INPUTS).unwrap();
    let mut fx = Fx {
        p,
        demo,
        sb: Sandbox::new(),
    };
    let sb = worker(&fx);
    let mut child = slow_test(&fx, &sb, &fx.p.url(), &[]);
    let early = wait_streamed(&fx, &mut child);
    // The platform stops: its connections close, new ones are refused. A
    // spare stands in meanwhile; nothing talks to it.
    let old_url = fx.p.url();
    let spare = platform_keeping(Some(&data.path().join("spare.db")));
    drop(std::mem::replace(&mut fx.p, spare));
    let (code, stderr) = finish(child);
    let dir = newest_result_dir(&sb);
    let rel = dir.strip_prefix(sb.work()).unwrap().display().to_string();
    assert_eq!(code, Some(4), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!("warning: the results are kept in {rel}; upload them later with `fluxloop sync upload --result-dir {rel}`")
    );
    // substring: the cause names the stopped server's random port
    assert!(stderr.contains(&old_url), "{stderr}");
    // Every run finished and is on disk, though the upload failed.
    assert_eq!(jsonl(&dir.join("trace_summary.jsonl")).len(), INPUTS);
    // The platform is back, with what it stored before it stopped.
    fx.p = platform_keeping(Some(&db));
    let before = stored(&fx);
    assert!(before >= early && before < INPUTS, "{before} runs stored");
    cmd(
        &fx,
        &sb,
        &fx.p.url(),
        &["sync", "upload", "--result-dir", &rel],
    )
    .run()
    .ok()
    // substring: the rest is the platform-generated batch id and the server URL
    .stdout_has(&format!("Uploaded {INPUTS} runs"));
    fx.assert_stored_once(INPUTS);
}

#[test]
fn issue_17_a_streaming_shard_killed_mid_run_and_rerun_leaves_no_duplicate() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    let flags = ["--batch-key", "stream-9", "--shard", "1/1"];
    let mut victim = slow_test(&fx, &sb, &fx.p.url(), &flags);
    wait_streamed(&fx, &mut victim);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let key = "stream-9:big";
    assert_eq!(fx.batch(key)["status"], "running");
    let (code, stderr) = finish(slow_test(&fx, &sb, &fx.p.url(), &flags));
    assert_eq!(code, Some(0), "{stderr}");
    fx.assert_each_input(key, INPUTS, 1);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
}

#[test]
fn issue_17_sync_upload_of_a_streaming_job_killed_mid_run_appends_to_its_batch_once() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    resume_killed(&fx, &sb, slow_test(&fx, &sb, &fx.p.url(), &[]));
}

#[test]
fn issue_17_a_job_killed_before_the_answer_to_its_first_chunk_is_resumed_into_that_batch() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    // The platform stores the first streamed chunk and holds its answer,
    // the batch id, past the job's death: only the job's own record of
    // what it sent can lead the rerun to that batch.
    fx.p.inject_faults("/api/sync/upload", vec![Fault::HoldAnswer(BOUND)]);
    let victim = spawn(slow_cmd(&fx, &sb, &fx.p.url(), &[]).env("FLUXLOOP_HTTP_TIMEOUT", "120"));
    let dir = resume_killed(&fx, &sb, victim);
    assert!(!dir.join("upload_opening.json").exists());
}

/// Kills `victim` once a run reached the platform, then `sync upload`s its
/// result directory: the rest appends to the batch streaming opened, and
/// the streamed runs are not stored again, there or in a new batch.
fn resume_killed(fx: &Fx, sb: &Sandbox, mut victim: Child) -> PathBuf {
    wait_streamed(fx, &mut victim);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let streamed = fx.p.batch_ids().unwrap();
    assert_eq!(streamed.len(), 1);
    let dir = newest_result_dir(sb);
    let on_disk = jsonl(&dir.join("trace_summary.jsonl")).len();
    let rel = dir.strip_prefix(sb.work()).unwrap().display().to_string();
    cmd(
        fx,
        sb,
        &fx.p.url(),
        &["sync", "upload", "--result-dir", &rel],
    )
    .run()
    .ok()
    // substring: the rest is the server URL
    .stdout_has(&format!(
        "Uploaded {on_disk} runs: run batch {}",
        streamed[0]
    ));
    assert_eq!(fx.assert_stored_once(on_disk), streamed[0]);
    dir
}
