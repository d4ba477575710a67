//! Issue 17, fan-out: `test --shard I/N|auto` splits the runs of a job
//! over separate processes, each seeing the same partition, with the CI
//! variables GitLab and Kubernetes set.

use crate::fixtures::{setup, Fx};
use crate::util::Cmd;

/// A seeded platform with the scenario pulled, and an agent that passes.
fn pulled() -> Fx {
    let fx = setup(0);
    fx.sb.write(
        "agent.sh",
        "read -r line\necho '{\"success\":true,\"output\":\"ok\"}'\n",
    );
    fx.cmd(&["sync", "pull", "--scenario", "support-bot", "--yes"])
        .run()
        .ok();
    fx
}

fn test(fx: &Fx, flags: &[&str]) -> Cmd {
    let mut args = vec!["test", "--scenario", "support-bot", "--skip-pull"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "agent.sh"]);
    fx.cmd(&args)
}

#[test]
fn issue_17_shards_split_the_runs_in_round_robin_the_same_from_every_ci() {
    let fx = pulled();
    // --json goes before `--`: the flags are built by hand here.
    let list = |flags: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "test",
            "--scenario",
            "support-bot",
            "--skip-pull",
            "--list",
            "-n",
            "2",
            "--json",
        ];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "agent.sh"]);
        let mut cmd = fx.cmd(&args);
        for (k, v) in env {
            cmd = cmd.env(k, *v);
        }
        let run = cmd.run();
        run.ok();
        run.json()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["input_item_id"].as_str().unwrap().to_string(),
                    r["iteration"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let all = list(&[], &[]);
    assert!(
        all.len() >= 8,
        "the seed has enough runs for 4 shards: {all:?}"
    );
    for i in 1..=4usize {
        let want: Vec<_> = all.iter().skip(i - 1).step_by(4).cloned().collect();
        let spec = format!("{i}/4");
        assert_eq!(list(&["--shard", &spec], &[]), want, "--shard {spec}");
        let gitlab = i.to_string();
        assert_eq!(
            list(
                &["--shard", "auto"],
                &[("CI_NODE_INDEX", &gitlab), ("CI_NODE_TOTAL", "4")]
            ),
            want,
            "GitLab parallel: node {i}"
        );
        let k8s = (i - 1).to_string();
        assert_eq!(
            list(
                &["--shard", "auto"],
                &[
                    ("JOB_COMPLETION_INDEX", &k8s),
                    ("FLUXLOOP_SHARD_TOTAL", "4")
                ]
            ),
            want,
            "Kubernetes completion index {k8s}"
        );
        assert_eq!(
            list(&["--shard", "auto"], &[("FLUXLOOP_SHARD", &spec)]),
            want
        );
    }
    // test.shard in fluxloop.yaml, and the flag over it.
    fx.sb.write("fluxloop.yaml", "test:\n  shard: 2/4\n");
    let second: Vec<_> = all.iter().skip(1).step_by(4).cloned().collect();
    assert_eq!(list(&[], &[]), second);
    let third: Vec<_> = all.iter().skip(2).step_by(4).cloned().collect();
    assert_eq!(list(&["--shard", "3/4"], &[]), third);
    std::fs::remove_file(fx.sb.work().join("fluxloop.yaml")).unwrap();
}

#[test]
fn issue_17_a_shard_runs_only_its_part_and_an_empty_one_succeeds_with_a_note() {
    let fx = pulled();
    let run = test(&fx, &["--skip-upload", "--json", "--shard", "1/3"]).run();
    run.ok();
    let all = {
        let run = test(&fx, &["--list", "--json"]).run();
        run.ok();
        run.json()["runs"].as_array().unwrap().len() as u64
    };
    assert_eq!(run.json()["total"].as_u64().unwrap(), all.div_ceil(3));

    let shards = (all + 1).to_string();
    let spec = format!("{shards}/{shards}");
    let run = test(&fx, &["--skip-upload", "--shard", &spec]).run();
    run.ok();
    assert_eq!(
        run.stdout,
        format!("Nothing to run: shard {spec} of support-bot has no runs ({all} runs split over {shards} shards)\n")
    );
}

#[test]
fn issue_17_bad_shards_are_one_line_errors() {
    let fx = pulled();
    let run = test(&fx, &["--list", "--shard", "5/4"]).run();
    run.code(2);
    assert_eq!(run.stderr, "error: invalid value '5/4' for --shard: the shard must be from 1 to 4 (1-based), not 5\n  hint: usage: fluxloop test [OPTIONS] [-- AGENT COMMAND...]\n  hint: run `fluxloop test --help` for more\n");
    let run = test(&fx, &["--list", "--shard", "auto"]).run();
    run.code(2);
    assert_eq!(run.stderr, "error: --shard auto: no CI shard variables are set (CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB, CIRCLE_NODE_INDEX, JOB_COMPLETION_INDEX, FLUXLOOP_SHARD)\n  hint: pass --shard I/N, or set FLUXLOOP_SHARD=I/N (GitLab parallel:, Buildkite and CircleCI parallelism, and Kubernetes Indexed Jobs with FLUXLOOP_SHARD_TOTAL are read by themselves)\n");
    let run = test(&fx, &["--list", "--shard", "auto"])
        .env("CI_NODE_INDEX", "0")
        .env("CI_NODE_TOTAL", "4")
        .run();
    run.code(2);
    assert_eq!(run.stderr, "error: --shard auto: CI_NODE_INDEX=0, CI_NODE_TOTAL=4: the shard must be from 1 to 4 (1-based), not 0\n  hint: pass --shard I/N, or set FLUXLOOP_SHARD=I/N (GitLab parallel:, Buildkite and CircleCI parallelism, and Kubernetes Indexed Jobs with FLUXLOOP_SHARD_TOTAL are read by themselves)\n");
    let run = test(&fx, &["--list", "--shard", "auto"])
        .env("JOB_COMPLETION_INDEX", "4")
        .env("FLUXLOOP_SHARD_TOTAL", "4")
        .run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: --shard auto: JOB_COMPLETION_INDEX=4, FLUXLOOP_SHARD_TOTAL=4: JOB_COMPLETION_INDEX counts from 0, so it must be below 4\n  hint: pass --shard I/N, or set FLUXLOOP_SHARD=I/N (GitLab parallel:, Buildkite and CircleCI parallelism, and Kubernetes Indexed Jobs with FLUXLOOP_SHARD_TOTAL are read by themselves)\n"
    );
    fx.sb.write("fluxloop.yaml", "test:\n  shard: 1/0\n");
    let run = test(&fx, &["--list"]).run();
    run.code(2);
    assert_eq!(run.stderr, format!("error: {}:2:10: test.shard: the number of shards must be from 1 to 10000, not 0\n  hint: see the fluxloop.yaml reference in README.md\n", fx.sb.work().join("fluxloop.yaml").display()));
}
