//! Issue 17, "Done when": 4 shards as separate processes (each its own
//! checkout, as CI workers are), with the variables GitLab `parallel: 4`
//! and a Kubernetes Indexed Job set, upload into one run batch on the
//! local platform, every run once; a shard killed mid-run and rerun, or
//! retried after it finished, leaves no duplicate.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{fast, setup, Fx};
use crate::util::{Cmd, Sandbox};

const INPUTS: usize = 12;
/// Passes, slowly when `$SLOW` is set (so a kill lands mid-run); fails
/// every run when `$BROKEN` is set.
const AGENT: &str = "read -r line
[ -n \"$SLOW\" ] && sleep 0.3
if [ -n \"$BROKEN\" ]; then echo '{\"success\":false,\"output\":\"no\",\"error\":{\"message\":\"broken tool\"}}'; exit 0; fi
echo '{\"success\":true,\"output\":\"ok\"}'
";

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
    pipeline("4242", node)
}

fn pipeline(id: &str, node: usize) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_CI", "true".into()),
        ("CI", "true".into()),
        ("CI_PIPELINE_ID", id.into()),
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

/// Every input of the scenario once, as input id → count, and the batch is completed.
#[track_caller]
fn every_run_once(fx: &Fx, key: &str) {
    let b = fx.assert_each_input(key, INPUTS, 1);
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
        fx.batch(key)["status"],
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
    let b = fx.batch("b1:big");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["run_count"], INPUTS);
    assert_eq!(b["shards"]["reported"].as_array().unwrap().len(), total);
}

/// `report --wait` of GitLab pipeline `id`, in a checkout of its own.
fn report(fx: &Fx, sb: &Sandbox, id: &str, wait: &str) -> Cmd {
    let mut c = cmd(fx, sb, &["report", "--scenario", "big", "--wait", wait]);
    for (k, v) in pipeline(id, 1).into_iter().take(3) {
        c = c.env(k, v);
    }
    c
}

/// Runs the 4 shards of pipeline `id`, shard `broken` failing every run.
fn pipeline_shards(fx: &Fx, workers: &[Sandbox], id: &str, broken: Option<usize>) {
    let children: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, sb)| {
            let mut c = shard(fx, sb, &pipeline(id, i + 1));
            if broken == Some(i + 1) {
                c = c.env("BROKEN", "1");
            }
            spawn(c)
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 10)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn issue_17_report_waits_for_every_shard_and_exits_10_when_one_failed() {
    let fx = setup(INPUTS);
    let workers: Vec<Sandbox> = (0..4).map(|_| worker(&fx)).collect();
    let fan_in = Sandbox::new();
    // Started before any shard: it must wait for all four.
    let waiting = report(&fx, &fan_in, "500", "60")
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pipeline_shards(&fx, &workers, "500", Some(3));
    let out = waiting.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(10), "{stdout}{stderr}");
    let id = fx.batch("gitlab:500:big")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stdout.starts_with(&format!(
            "FAILED run batch {id}: 9 of 12 runs passed from 4 shards\n\nFailed runs:\n"
        )),
        "{stdout}"
    );
    // Which progress lines appear depends on when the shards finish.
    // substring: which progress lines appear depends on when the shards finish
    assert!(stderr.contains("Waiting for "), "{stderr}");
    let junit = std::fs::read_to_string(fan_in.work().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), INPUTS);
    assert_eq!(junit.matches("<failure").count(), 3);

    // All passing: 0.
    pipeline_shards(&fx, &workers, "501", None);
    let run = report(&fx, &fan_in, "501", "10").run();
    run.ok();
    let id = fx.batch("gitlab:501:big")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        run.stdout,
        format!(
            "PASSED run batch {id}: 12 of 12 runs passed from 4 shards\n\nJUnit: {}\n",
            fan_in.work().join("junit.xml").display()
        )
    );
}

#[test]
fn issue_17_report_of_a_batch_missing_a_shard_exits_5() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    let run = cmd(
        &fx,
        &sb,
        &[
            "test",
            "--scenario",
            "big",
            "--skip-pull",
            "--shard",
            "1/2",
            "--batch-key",
            "k",
            "--",
            "sh",
            "agent.sh",
        ],
    )
    .run();
    run.ok();
    let report = |flags: &[&str]| {
        let mut args = vec!["report", "--scenario", "big", "--batch-key", "k"];
        args.extend_from_slice(flags);
        cmd(&fx, &sb, &args).run()
    };
    let run = report(&[]);
    run.code(5);
    assert_eq!(
        run.stderr,
        "error: run batch with key k:big: 1 of 2 shard reports not found\n  hint: pass --wait [SECS] to wait for the other shards\n"
    );
    let run = report(&["--wait", "1"]);
    run.code(5);
    assert_eq!(
        run.stderr,
        "Waiting for shards: 1 of 2 reported\nerror: run batch with key k:big: 1 of 2 shard reports not found\n  hint: a shard may have failed before uploading: rerun it, or wait longer with --wait SECS\n"
    );
}

#[test]
fn issue_17_report_writes_the_github_step_summary() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    let run = cmd(
        &fx,
        &sb,
        &[
            "test",
            "--scenario",
            "big",
            "--skip-pull",
            "--shard",
            "1/1",
            "--batch-key",
            "g",
            "--",
            "sh",
            "agent.sh",
        ],
    )
    .env("BROKEN", "1")
    .run();
    run.code(10);
    let summary = sb.work().join("step-summary.md");
    let outputs = sb.work().join("outputs.txt");
    let run = cmd(
        &fx,
        &sb,
        &["report", "--scenario", "big", "--batch-key", "g"],
    )
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_STEP_SUMMARY", &summary)
    .env("GITHUB_OUTPUT", &outputs)
    .run();
    run.code(10);
    let b = fx.batch("g:big");
    // The action's outputs in `mode: report`.
    assert_eq!(
        std::fs::read_to_string(&outputs).unwrap(),
        format!(
            "run-batch-id={}\ntotal=12\npassed=0\nfailed=12\n",
            b["id"].as_str().unwrap()
        )
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    let head = format!(
        "### ❌ FluxLoop run batch {}\n\n| Runs | Passed | Failed |\n|---:|---:|---:|\n| 12 | 0 | 12 |\n\n**Failed runs**\n\n",
        b["id"].as_str().unwrap()
    );
    // The failed runs' lines are the labels `test` uses, Markdown-escaped
    // by github::md_cell (unit-tested there); here: one per run, each with
    // the agent's last answer.
    let rest = md.strip_prefix(&head).unwrap_or_else(|| panic!("{md}"));
    let lines: Vec<&str> = rest.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 12, "{md}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("- ") && l.ends_with(", iteration 0\\]: no")),
        "{md}"
    );
    assert!(md.ends_with(": no\n\n"));
}

#[test]
fn issue_17_a_shard_uploaded_later_joins_its_batch() {
    let fx = setup(INPUTS);
    let sb = worker(&fx);
    // Run without upload (or killed before it): the key and shard are in summary.json.
    for i in 1..=2 {
        let spec = format!("{i}/2");
        let mut args = vec![
            "test",
            "--scenario",
            "big",
            "--skip-pull",
            "--shard",
            &spec,
            "--batch-key",
            "later",
        ];
        if i == 2 {
            args.push("--skip-upload");
        }
        args.extend(["--", "sh", "agent.sh"]);
        cmd(&fx, &sb, &args).run().ok();
    }
    assert_eq!(fx.batch("later:big")["status"], "running");
    let dir = crate::fixtures::newest_result_dir(&sb);
    cmd(
        &fx,
        &sb,
        &["sync", "upload", "--result-dir", &dir.display().to_string()],
    )
    .run()
    .ok();
    let b = fx.batch("later:big");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["run_count"], INPUTS);
    assert_eq!(fx.p.batch_ids().unwrap().len(), 1);
}
