//! Issue 17, "Done when": 4 shards as separate processes (each its own
//! checkout, as CI workers are), with the variables GitLab `parallel: 4`
//! and a Kubernetes Indexed Job set, upload into one run batch on the
//! local platform, every run once; a shard killed mid-run and rerun, or
//! retried after it finished, leaves no duplicate.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixtures::{fast, setup, Fx};
use crate::util::{Cmd, Sandbox};

const INPUTS: usize = 12;
/// Passes, slowly when `$SLOW` is set (so a kill lands mid-run).
const AGENT: &str =
    "read -r line\n[ -n \"$SLOW\" ] && sleep 0.3\necho '{\"success\":true,\"output\":\"ok\"}'\n";

/// A CI worker: its own checkout with the agent, the scenario pulled.
fn worker(fx: &Fx) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("agent.sh", AGENT);
    cmd(fx, &sb, &["sync", "pull", "--scenario", "big", "--yes"])
        .run()
        .ok();
    sb
}

fn cmd(fx: &Fx, sb: &Sandbox, args: &[&str]) -> Cmd {
    fast(sb.cmd(args))
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
}

/// `test --shard auto` of the worker with the CI's variables `vars`.
fn shard(fx: &Fx, sb: &Sandbox, vars: &[(&str, String)]) -> Cmd {
    let mut c = cmd(
        fx,
        sb,
        &[
            "test",
            "--scenario",
            "big",
            "--skip-pull",
            "--shard",
            "auto",
            "--",
            "sh",
            "agent.sh",
        ],
    );
    for (k, v) in vars {
        c = c.env(k, v);
    }
    c
}

fn spawn(c: Cmd) -> Child {
    c.command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[track_caller]
fn wait_ok(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gitlab(node: usize) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_CI", "true".into()),
        ("CI", "true".into()),
        ("CI_PIPELINE_ID", "4242".into()),
        ("CI_NODE_INDEX", node.to_string()),
        ("CI_NODE_TOTAL", "4".into()),
    ]
}

fn kubernetes(index: usize) -> Vec<(&'static str, String)> {
    vec![
        ("JOB_COMPLETION_INDEX", index.to_string()),
        ("FLUXLOOP_SHARD_TOTAL", "4".into()),
        ("FLUXLOOP_BATCH_KEY", "job-7f3a".into()),
    ]
}

/// The batch of `key` as the platform answers `GET /api/run-batches?key=`.
fn batch(fx: &Fx, key: &str) -> Value {
    let url = format!(
        "{}/api/run-batches?key={}",
        fx.p.url(),
        key.replace(':', "%3A")
    );
    let mut resp = ureq::get(&url)
        .header("Authorization", &format!("Bearer {}", fx.demo.key))
        .call()
        .unwrap();
    serde_json::from_reader(resp.body_mut().as_reader()).unwrap()
}

/// Every input of the scenario once, as input id → count, and the batch is completed.
#[track_caller]
fn every_run_once(fx: &Fx, key: &str) {
    let b = batch(fx, key);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in b["runs"].as_array().unwrap() {
        *seen
            .entry(r["input_item_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), INPUTS, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 1),
        "a run stored twice: {seen:?}"
    );
    assert_eq!(b["status"], "completed");
    let reported: Vec<u64> = b["shards"]["reported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["runs"].as_u64().unwrap())
        .collect();
    assert_eq!(reported, [3, 3, 3, 3]);
}

#[test]
fn issue_17_four_gitlab_shards_fill_one_batch_with_every_run_once() {
    let fx = setup(INPUTS);
    let workers: Vec<Sandbox> = (0..4).map(|_| worker(&fx)).collect();
    let children: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, sb)| spawn(shard(&fx, sb, &gitlab(i + 1))))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        wait_ok(c, &format!("GitLab node {}", i + 1));
    }
    let key = "gitlab:4242:big";
    every_run_once(&fx, key);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
    // A retried job (GitLab's "retry" keeps the pipeline id) replaces its runs.
    wait_ok(spawn(shard(&fx, &workers[1], &gitlab(2))), "retried node 2");
    every_run_once(&fx, key);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
}

#[test]
fn issue_17_a_kubernetes_shard_killed_mid_run_and_rerun_leaves_no_duplicate() {
    let fx = setup(INPUTS);
    let workers: Vec<Sandbox> = (0..4).map(|_| worker(&fx)).collect();
    let slow = |i: usize| {
        let mut vars = kubernetes(i);
        vars.push(("SLOW", "1".into()));
        shard(&fx, &workers[i], &vars)
    };
    let mut victim = spawn(slow(1));
    // Killed once its first run is on disk: mid-run, before any upload.
    let results = workers[1].work().join(".fluxloop/results");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started = std::fs::read_dir(&results).ok().is_some_and(|dirs| {
            dirs.flatten().any(|d| {
                std::fs::read_to_string(d.path().join("trace_summary.jsonl"))
                    .is_ok_and(|t| t.lines().count() >= 1)
            })
        });
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "shard 2 never finished a run");
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let others: Vec<Child> = [0, 2, 3]
        .iter()
        .map(|&i| spawn(shard(&fx, &workers[i], &kubernetes(i))))
        .collect();
    for c in others {
        wait_ok(c, "kubernetes shard");
    }
    let key = "job-7f3a:big";
    assert_eq!(
        batch(&fx, key)["status"],
        "running",
        "shard 2 has not reported"
    );
    wait_ok(spawn(slow(1)), "rerun of shard 2");
    every_run_once(&fx, key);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
}

#[test]
fn issue_17_an_empty_shard_reports_done_so_the_batch_completes() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    // One shard more than runs: the last one has nothing to run.
    let total = INPUTS + 1;
    for i in 1..=total {
        let spec = format!("{i}/{total}");
        let run = cmd(
            &fx,
            &sb,
            &[
                "test",
                "--scenario",
                "big",
                "--skip-pull",
                "--shard",
                &spec,
                "--batch-key",
                "b1",
                "--",
                "sh",
                "agent.sh",
            ],
        )
        .run();
        run.ok();
        if i == total {
            let id = fx.p.batch_ids().unwrap().remove(0);
            assert_eq!(
                run.stdout,
                format!("Nothing to run: shard {spec} of big has no runs ({INPUTS} runs split over {total} shards)\nReported to run batch {id} as done\n")
            );
        }
    }
    let b = batch(&fx, "b1:big");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["run_count"], INPUTS);
    assert_eq!(b["shards"]["reported"].as_array().unwrap().len(), total);
}
