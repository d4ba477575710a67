//! `sync pull`, `test` and `sync upload` end to end: the real binary, real
//! agent processes, and the local platform.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fluxloop_platform::{Demo, Fault, Platform};
use serde_json::Value;

use crate::util::{platform, CheckedPlatform, Cmd, Sandbox};

/// The example agent shipped in `examples/support-agent`.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("support-agent")
}

/// A sandbox with the example agent and its fluxloop.yaml, and a seeded platform.
fn setup() -> (CheckedPlatform, Demo, Sandbox) {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    let sb = Sandbox::new();
    for f in ["agent.py", "fluxloop.yaml"] {
        std::fs::copy(example_dir().join(f), sb.work().join(f)).unwrap();
    }
    (p, demo, sb)
}

fn with_key(cmd: Cmd, p: &Platform, key: &str) -> Cmd {
    cmd.env("FLUXLOOP_API_KEY", key)
        .env("FLUXLOOP_API_ENDPOINT", p.url())
        .env("FLUXLOOP_RETRY_BACKOFF_MS", "10")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The one result directory of the sandbox.
fn result_dir(sb: &Sandbox) -> PathBuf {
    let root = sb.work().join(".fluxloop").join("results");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.pop().expect("a result directory")
}

fn trace(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("trace_summary.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn batch_id_from(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Uploaded "))
        .unwrap_or_else(|| panic!("no upload line:\n{stdout}"));
    line.rsplit(' ').next().unwrap().to_string()
}

/// Python with `junitparser`, in a venv under target/ (made once; `.ci/run`
/// may have made it already).
pub(crate) fn junit_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("junit-venv");
        let py = venv.join("bin").join("python");
        let has = |py: &Path| {
            Command::new(py)
                .args(["-c", "import junitparser"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has(&py) {
            let ok = Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin").join("pip"))
                    .args([
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "junitparser",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok && has(&py),
                "cannot set up {} with junitparser (python3 -m venv + pip install junitparser)",
                venv.display()
            );
        }
        py
    })
    .clone()
}

/// Reads a JUnit file with junitparser, as CI reporters do.
fn junit_parsed(path: &Path) -> Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure
xml = JUnitXml.fromfile(sys.argv[1])
suites = list(xml) if hasattr(xml, '__iter__') else [xml]
cases, failed, messages = 0, 0, []
for suite in xml:
    for case in suite:
        cases += 1
        for r in case.result:
            if isinstance(r, Failure):
                failed += 1
                messages.append(r.message)
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "cases": cases, "failed_cases": failed, "messages": messages,
                  "suites": [s.name for s in xml]}))
"#;
    let out = Command::new(junit_python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junitparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn full_ci_flow_with_the_example_agent() {
    let (p, demo, sb) = setup();
    let pull = with_key(sb.cmd(&["sync", "pull", "--yes"]), &p, &demo.key)
        .env("CI", "true")
        .run();
    assert_eq!(
        pull.ok().stdout,
        format!(
            "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v{})\n",
            demo.bundle_version
        )
    );
    let pulled = sb.work().join(".fluxloop/scenarios/support-bot/pulled");
    let inputs = read_json(&pulled.join("inputs.json"));
    assert_eq!(inputs.as_array().unwrap().len(), 10);
    assert!(inputs[0].get("messages").is_some() && inputs[0].get("id").is_some());
    let meta = read_json(&pulled.join("sync_meta.json"));
    for key in [
        "bundle_version",
        "run_spec_snapshot",
        "scenario_context",
        "input_set",
        "sync_meta",
    ] {
        assert!(
            meta.get(key).is_some(),
            "sync_meta.json lacks {key}: {meta}"
        );
    }
    assert_eq!(
        meta["bundle_version"]["id"],
        demo.bundle_version_id.as_str()
    );
    assert!(pulled.join("personas.json").is_file() && pulled.join("criteria.json").is_file());

    let run = with_key(
        sb.cmd(&["test", "--no-skip-upload", "--yes"]),
        &p,
        &demo.key,
    )
    .env("CI", "true")
    .run();
    run.ok()
        // substring: the run table around it holds wall times and random input ids, and the batch id is platform-generated
        .stdout_has("PASSED support-bot: 10 of 10 runs passed")
        .stdout_has("Uploaded 10 runs: run batch ")
        .stdout_has(&format!("{}/run-batches/", p.url()))
        .no_secret(&demo.key);
    let batch = batch_id_from(&run.stdout);
    assert_eq!(p.run_count(&batch).unwrap(), 10);
    assert_eq!(p.batch_ids().unwrap(), vec![batch.clone()]);

    let dir = result_dir(&sb);
    assert!(dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("support-bot-"));
    let records = trace(&dir);
    assert_eq!(records.len(), 10);
    for r in &records {
        for key in [
            "run_id",
            "iteration",
            "persona",
            "input",
            "input_item_id",
            "input_metadata",
            "output",
            "success",
            "duration_ms",
            "turn_count",
            "token_usage",
            "timestamp",
        ] {
            assert!(r.get(key).is_some(), "trace record lacks {key}: {r}");
        }
        assert_eq!(r["success"], true);
        assert!(r["input_metadata"]["messages"].is_array());
        assert!(r["token_usage"]["total_tokens"].is_u64());
    }
    let summary = read_json(&dir.join("summary.json"));
    for key in [
        "experiment_name",
        "runner_type",
        "total_runs",
        "success_count",
        "failure_count",
        "success_rate",
        "total_duration_ms",
        "total_tokens",
        "created_at",
    ] {
        assert!(
            summary.get(key).is_some(),
            "summary.json lacks {key}: {summary}"
        );
    }
    assert_eq!(summary["total_runs"], 10);
    assert_eq!(summary["success_rate"], 1.0);
    assert_eq!(summary["runner_type"], "process");
    let errors = read_json(&dir.join("errors.json"));
    assert_eq!(errors["failure_count"], 0);
    let junit = junit_parsed(&dir.join("junit.xml"));
    assert_eq!(
        (
            junit["tests"].as_u64(),
            junit["failures"].as_u64(),
            junit["cases"].as_u64()
        ),
        (Some(10), Some(0), Some(10))
    );

    // The scope was checked before the pull, and the upload carried a key.
    let reqs = p.requests();
    let first_self = reqs
        .iter()
        .position(|r| r.path == "/api/api-keys/self")
        .unwrap();
    let first_pull = reqs
        .iter()
        .position(|r| r.path == "/api/sync/pull")
        .unwrap();
    assert!(first_self < first_pull);
    let uploads: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/api/sync/upload")
        .collect();
    assert_eq!(uploads.len(), 1);
    assert!(uploads[0].idempotency_key.is_some());
}

#[test]
fn failing_agent_exits_10_with_reports_and_annotations() {
    let (p, demo, sb) = setup();
    let summary = sb.write("gh/summary.md", "");
    let outputs = sb.write("gh/output", "");
    let run = with_key(
        sb.cmd(&["test", "--yes", "--iterations", "2", "--parallel", "3", "--", "sh", "-c"]),
        &p,
        &demo.key,
    )
    .arg(r#"read -r line; case "$line" in *'"iteration":1'*) echo "Traceback: boom" >&2; exit 3;; esac; echo '{"success":true,"output":"ok"}'"#)
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_STEP_SUMMARY", &summary)
    .env("GITHUB_OUTPUT", &outputs)
    .run();
    run.code(10)
        // substring: the run table around it holds wall times and random input ids, and the annotations name random input ids
        .stdout_has("FAILED support-bot: 10 of 20 runs passed")
        .stdout_has("::error title=fluxloop run failed::")
        .stdout_has("the agent exited with code 3; stderr: Traceback: boom")
        .stdout_has("\n10 runs failed: see the annotations and the job summary\n");
    assert_eq!(run.stdout.matches("::error ").count(), 10);
    // Each failure once in the log (its annotation) and once in the summary
    // (issue 16, item 15): no log group, no list in the report.
    // substring: an absence, which must hold anywhere in the text
    assert!(!run.stdout.contains("::group::"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("Traceback: boom").count(), 10);
    let batch = batch_id_from(&run.stdout);
    assert_eq!(p.run_count(&batch).unwrap(), 20);

    let dir = result_dir(&sb);
    let errors = read_json(&dir.join("errors.json"));
    assert_eq!(errors["failure_count"], 10);
    let f = &errors["failures"][0];
    assert_eq!(f["iteration"], 1);
    assert!(
        f["error"]["message"]
            .as_str()
            .unwrap()
            // substring: the message goes on with the agent's stderr tail
            .contains("exited with code 3"),
        "{f}"
    );
    let junit = junit_parsed(&dir.join("junit.xml"));
    assert_eq!(
        (
            junit["tests"].as_u64(),
            junit["failures"].as_u64(),
            junit["failed_cases"].as_u64()
        ),
        (Some(20), Some(10), Some(10))
    );
    assert!(junit["messages"][0]
        .as_str()
        .unwrap()
        // substring: the message goes on with the agent's stderr tail
        .contains("exited with code 3"));

    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        // substring: the rest of the step summary holds timings and ids
        md.contains("❌ FluxLoop: support-bot") && md.contains("| 20 | 10 | 10 | 50.0% |"),
        "{md}"
    );
    assert!(
        // substring: the rest of the step summary holds timings and ids
        md.contains(&format!(
            "[view the results]({}/run-batches/{batch})",
            p.url()
        )),
        "{md}"
    );
    let out = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        // substring: the GitHub output file also holds the runner's own lines
        out.contains(&format!("run-batch-id={batch}\n"))
            && out.contains("total=20\n")
            && out.contains("failed=10\n"),
        "{out}"
    );
}

#[test]
fn hanging_agent_is_killed_with_its_children() {
    let (p, demo, sb) = setup();
    let pids = sb.work().join("pids");
    let started = Instant::now();
    let run = with_key(
        sb.cmd(&[
            "test",
            "--yes",
            "--skip-upload",
            "--timeout",
            "1",
            "--parallel",
            "5",
            "--",
            "sh",
            "-c",
        ]),
        &p,
        &demo.key,
    )
    .arg(format!(
        "sleep 60 & echo $! >> {}; sleep 60",
        pids.display()
    ))
    .run();
    // substring: the run table around it holds wall times and random input ids
    run.code(10).stdout_has("timed out after 1s");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let errors = read_json(&result_dir(&sb).join("errors.json"));
    assert_eq!(errors["failure_count"], 10);
    assert!(errors["failures"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("timed out after 1s"));
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 10);
    // Polled with a deadline: the group is killed, reaping may lag a little.
    for pid in pids {
        assert!(
            crate::fixtures::gone_within(pid, Duration::from_secs(5)),
            "background child {pid} of a timed-out agent survived"
        );
    }
}

#[test]
fn garbage_or_silent_agents_fail_with_a_reason() {
    let (p, demo, sb) = setup();
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
    let garbage = sb
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--",
            "sh",
            "-c",
            "echo 'Hello, I am not JSON'; echo '[1,2]'",
        ])
        .run();
    garbage
        .code(10)
        // substring: the run table around it holds wall times and random input ids
        .stdout_has(r#"the agent printed no JSON result line on stdout (last output: "[1,2]")"#);
    let nothing = sb
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--",
            "sh",
            "-c",
            "echo oops >&2",
        ])
        .run();
    // substring: the run table around it holds wall times and random input ids
    nothing.code(10).stdout_has(
        "the agent printed nothing on stdout (expected a JSON result line); stderr: oops",
    );
    let missing = sb
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--",
            "no-such-agent-binary",
        ])
        .run();
    // A missing agent is a configuration error before any run (issue 16, item 8).
    missing.code(2);
    assert_eq!(
        missing.stderr,
        "error: the agent command no-such-agent-binary is not on PATH\n  hint: check runner.command in fluxloop.yaml, or the command after `--`\n"
    );
    let refused = sb
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--",
            "sh",
            "-c",
            r#"echo '{"success": false, "error": {"message": "model refused"}}'"#,
        ])
        .run();
    // substring: the run table around it holds wall times and random input ids
    refused.code(10).stdout_has("model refused");
}

#[test]
fn large_runs_upload_in_chunks_into_one_batch() {
    let p = platform();
    let demo = p.seed_demo().unwrap();
    p.seed_scenario(&demo.project_id, "big", 2500).unwrap();
    let sb = Sandbox::new();
    let run = with_key(
        sb.cmd(&[
            "test",
            "--scenario",
            "big",
            "--parallel",
            "8",
            "--",
            "echo",
            r#"{"success":true,"output":"ok"}"#,
        ]),
        &p,
        &demo.key,
    )
    .run();
    // substring: the run table around it holds wall times and random input ids, and the batch id is platform-generated
    run.ok().stdout_has("Uploaded 2500 runs: run batch ");
    let batch = batch_id_from(&run.stdout);
    assert_eq!(p.batch_ids().unwrap(), vec![batch.clone()]);
    assert_eq!(p.run_count(&batch).unwrap(), 2500);
    let uploads: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/sync/upload")
        .collect();
    assert_eq!(uploads.len(), 3);
    let mut keys: Vec<_> = uploads
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), 3, "one key per chunk");
}

#[test]
fn upload_retries_503_without_duplicates() {
    let (p, demo, sb) = setup();
    p.inject_faults(
        "/api/sync/upload",
        vec![
            Fault::Status {
                status: 503,
                retry_after: None,
            },
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        ],
    );
    let run = with_key(sb.cmd(&["test", "--yes"]), &p, &demo.key).run();
    run.ok()
        // substring: the run table around it holds wall times and random input ids; the retry warnings name the server's random port
        .stdout_has("Uploaded 10 runs")
        .stderr_has("retrying");
    let batch = batch_id_from(&run.stdout);
    assert_eq!(p.run_count(&batch).unwrap(), 10);
    assert_eq!(p.batch_ids().unwrap().len(), 1);
    let uploads: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/sync/upload")
        .collect();
    let statuses: Vec<u16> = uploads.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
    assert!(uploads
        .iter()
        .all(|r| r.idempotency_key == uploads[0].idempotency_key));

    // Uploading the same results again stores nothing new: the saved keys replay.
    with_key(sb.cmd(&["sync", "upload"]), &p, &demo.key)
        .run()
        .ok()
        // substring: the rest is the server URL with its random port
        .stdout_has(&batch);
    assert_eq!(p.batch_ids().unwrap().len(), 1);
    assert_eq!(p.run_count(&batch).unwrap(), 10);
}

#[test]
fn upload_failure_keeps_results_and_says_how_to_retry() {
    let (p, demo, sb) = setup();
    p.inject_faults(
        "/api/sync/upload",
        vec![
            Fault::Status {
                status: 500,
                retry_after: None
            };
            3
        ],
    );
    let run = with_key(sb.cmd(&["test", "--yes"]), &p, &demo.key)
        .env("FLUXLOOP_HTTP_RETRIES", "2")
        .run();
    run.code(4)
        // substring: the error names the result directory's timestamp and the server's random port; stdout holds the run table with wall times
        .stderr_has("fluxloop sync upload --result-dir")
        .stdout_has("PASSED support-bot");
    assert_eq!(trace(&result_dir(&sb)).len(), 10);
    let again = with_key(sb.cmd(&["sync", "push"]), &p, &demo.key).run();
    // substring: the rest is the platform-generated batch id and the server URL
    again.ok().stdout_has("Uploaded 10 runs");
    assert_eq!(p.run_count(&batch_id_from(&again.stdout)).unwrap(), 10);
}

#[test]
fn read_key_is_denied_before_any_agent_starts() {
    let (p, demo, sb) = setup();
    let ro = p
        .create_key(&demo.project_id, "ro", "service-account", "read")
        .unwrap();
    let marker = sb.work().join("agent-started");
    let run = with_key(
        sb.cmd(&["test", "--no-skip-upload", "--yes", "--", "sh", "-c"]),
        &p,
        &ro.key,
    )
    .arg(format!("touch {}", marker.display()))
    .run();
    assert_eq!(
        run.code(3).stderr,
        "error: Permission denied: this key has scope `read`, the operation needs `read and write`\n  hint: create a key with the needed scope: `fluxloop apikeys create --scope read-write`\n"
    );
    assert!(!marker.exists(), "an agent ran before the scope check");
    assert!(!p.requests().iter().any(|r| r.path == "/api/sync/pull"));
    // Reading alone is fine for a read key; uploading is not.
    with_key(sb.cmd(&["sync", "pull"]), &p, &ro.key).run().ok();
    sb.cmd(&["test", "--skip-pull", "--skip-upload"]).run().ok();
    assert_eq!(
        with_key(sb.cmd(&["sync", "upload"]), &p, &ro.key)
            .run()
            .code(3)
            .stderr,
        "error: Permission denied: this key has scope `read`, the operation needs `write`\n  hint: create a key with the needed scope: `fluxloop apikeys create --scope read-write`\n"
    );
    assert!(p.batch_ids().unwrap().is_empty());
}

#[test]
fn local_edits_stop_the_pull_unless_yes_or_keep_local() {
    let (p, demo, sb) = setup();
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
    // Unchanged: pulling again is fine.
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
    let inputs = sb
        .work()
        .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
    let original = std::fs::read_to_string(&inputs).unwrap();
    std::fs::write(&inputs, "[]\n").unwrap();
    assert_eq!(
        with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
            .run()
            .code(12)
            .stderr,
        "error: pulled files were edited locally since the last pull: .fluxloop/scenarios/support-bot/pulled/inputs.json\n  hint: rerun with --yes to take the platform's version, or --keep-local to keep your edits\n"
    );
    with_key(sb.cmd(&["test", "--skip-upload"]), &p, &demo.key)
        .run()
        .code(12);
    with_key(sb.cmd(&["sync", "pull", "--keep-local"]), &p, &demo.key)
        .run()
        .ok();
    assert_eq!(std::fs::read_to_string(&inputs).unwrap(), "[]\n");
    with_key(sb.cmd(&["sync", "pull", "--yes"]), &p, &demo.key)
        .run()
        .ok();
    assert_eq!(std::fs::read_to_string(&inputs).unwrap(), original);
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
}

#[test]
fn scenario_and_project_resolution() {
    let (p, demo, sb) = setup();
    p.seed_scenario(&demo.project_id, "billing", 3).unwrap();
    // By id, with the project from .fluxloop/project.json as FluxLoop CLI 0.4 writes it.
    std::fs::remove_file(sb.work().join("fluxloop.yaml")).unwrap();
    sb.write(
        ".fluxloop/project.json",
        &format!(
            r#"{{"project_id": "{}", "project_name": "Demo Project", "workspace_id": "w", "api_url": "{}", "connected_at": "2024-01-01T00:00:00Z"}}"#,
            demo.project_id,
            p.url()
        ),
    );
    let r = with_key(
        sb.cmd(&["sync", "pull", "--scenario", &demo.scenario_id]),
        &p,
        &demo.key,
    )
    .run();
    assert_eq!(
        r.ok().stdout,
        "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
    );
    let r = with_key(sb.cmd(&["sync", "pull", "-s", "billing"]), &p, &demo.key).run();
    assert_eq!(
        r.ok().stdout,
        "Pulled 3 inputs, 3 personas, 4 criteria for billing (bundle v1)\n"
    );
    let r = with_key(
        sb.cmd(&["sync", "pull", "--scenario", "nope"]),
        &p,
        &demo.key,
    )
    .run();
    assert_eq!(
        r.code(5).stderr,
        format!(
            "error: scenario 'nope' in project {} not found\n  hint: scenarios in this project: support-bot, billing\n",
            demo.project_id
        )
    );
    // Two scenarios pulled: an offline test must be told which.
    assert_eq!(
        sb.cmd(&["test", "--skip-pull", "--skip-upload", "--", "true"])
            .run()
            .code(2)
            .stderr,
        "error: several scenarios are pulled (billing, support-bot); which one?\n  hint: pass --scenario S, or set scenario in fluxloop.yaml\n"
    );
    let r = with_key(
        sb.cmd(&[
            "sync",
            "pull",
            "--bundle-version-id",
            &demo.bundle_version_id,
        ]),
        &p,
        &demo.key,
    )
    .run();
    assert_eq!(
        r.ok().stdout,
        "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
    );
}

#[test]
fn offline_test_needs_no_credential() {
    let (p, demo, sb) = setup();
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
    drop(p);
    let junit = sb.work().join("reports").join("fluxloop.xml");
    sb.cmd(&["test", "--skip-pull", "--skip-upload", "--junit"])
        .arg(&junit)
        .run()
        .ok()
        // substring: the run table around it holds wall times and random input ids
        .stdout_has("10 of 10 runs passed");
    assert_eq!(junit_parsed(&junit)["tests"], 10);
}

#[test]
fn function_runner_calls_python() {
    let (p, demo, sb) = setup();
    sb.write(
        "fluxloop.yaml",
        "scenario: support-bot\nrunner:\n  type: function\n  target: \"bot.handlers:reply\"\ntest:\n  auto_upload: false\n",
    );
    sb.write("bot/__init__.py", "");
    sb.write(
        "bot/handlers.py",
        "def reply(text):\n    if 'refund' in text.lower():\n        raise RuntimeError('no refunds today')\n    return 'echo: ' + text\n",
    );
    let run = with_key(sb.cmd(&["test"]), &p, &demo.key).run();
    let records = trace(&result_dir(&sb));
    assert_eq!(records.len(), 10);
    let failed: Vec<&Value> = records.iter().filter(|r| r["success"] == false).collect();
    assert!(!failed.is_empty(), "{}", run.stdout);
    // substring: the run table around it holds wall times and random input ids
    run.code(10).stdout_has("RuntimeError: no refunds today");
    assert!(records
        .iter()
        .filter(|r| r["success"] == true)
        .all(|r| r["output"].as_str().unwrap().starts_with("echo: ")));
    assert!(
        p.batch_ids().unwrap().is_empty(),
        "auto_upload: false must not upload"
    );
}

#[test]
fn stopped_run_keeps_the_finished_runs() {
    let (p, demo, sb) = setup();
    with_key(sb.cmd(&["sync", "pull"]), &p, &demo.key)
        .run()
        .ok();
    let cmd = sb
        .cmd(&["test", "--skip-pull", "--skip-upload", "--iterations", "2", "--", "sh", "-c"])
        .arg(r#"read -r line; case "$line" in *'"iteration":1'*) sleep 20;; esac; echo '{"success":true,"output":"ok"}'"#);
    let mut child = cmd
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace_path = loop {
        let root = sb.work().join(".fluxloop/results");
        let found = std::fs::read_dir(&root)
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("trace_summary.jsonl"));
        if let Some(t) =
            found.filter(|t| std::fs::read_to_string(t).is_ok_and(|s| s.lines().count() >= 10))
        {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the first iteration never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(0));
    let lines = std::fs::read_to_string(&trace_path).unwrap();
    assert_eq!(lines.lines().count(), 10, "{lines}");
    let summary = read_json(&trace_path.with_file_name("summary.json"));
    assert_eq!(summary["total_runs"], 10);
    assert_eq!(summary["interrupted"], true);
}

#[test]
fn ci_metadata_reaches_the_platform() {
    let (p, demo, sb) = setup();
    let event = sb.write(
        "event.json",
        r#"{"pull_request": {"number": 7, "head": {"sha": "headsha0000000000000000000000000000000000", "ref": "feature"}}}"#,
    );
    let run = with_key(sb.cmd(&["test", "--yes"]), &p, &demo.key)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_SHA", "mergesha")
        .env("GITHUB_HEAD_REF", "feature")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/bot")
        .env("GITHUB_RUN_ID", "99")
        .run();
    run.ok();
    let batch = batch_id_from(&run.stdout);
    let mut resp = ureq::get(format!("{}/api/run-batches/{batch}", p.url()))
        .header("Authorization", format!("Bearer {}", demo.key))
        .call()
        .unwrap();
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let ci = &body["upload_meta"]["ci"];
    assert_eq!(ci["provider"], "github_actions");
    assert_eq!(ci["commit"], "headsha0000000000000000000000000000000000");
    assert_eq!(ci["branch"], "feature");
    assert_eq!(ci["pull_request"], "7");
    assert_eq!(
        ci["build_url"],
        "https://github.com/acme/bot/actions/runs/99"
    );
    assert_eq!(
        body["upload_meta"]["cli_version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(body["runs"][0]["result"]["transcript"][0]["role"], "user");
}
