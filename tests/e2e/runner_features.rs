//! Issue 18, running: `--retries` and flaky runs, `--fail-under` and
//! `--max-failures`, choosing runs (`--input`, `--persona`, `--grep`,
//! `--last-failed`, `--list`, `--dry-run`) and `--rate`, with real agent
//! processes against the local platform, JUnit read by junitparser.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::fixtures::{jsonl, newest_result_dir, setup, Fx};
use crate::sync::junit_python;
use crate::util::Cmd;

/// Fails the first attempt of the password and refund inputs (a marker
/// file per run id remembers the attempt), always fails the GDPR input
/// when `$BROKEN` is set, and passes everything else.
const AGENT: &str = r#"read -r line
id=$(printf '%s' "$line" | sed 's/.*"run_id":"\([^"]*\)".*/\1/')
date +%s.%N >> "$MARKS/starts"
case "$line" in
  *password*|*refund*)
    if [ ! -e "$MARKS/$id" ]; then
      : > "$MARKS/$id"
      echo "upstream 503" >&2
      echo '{"success":false,"output":"try later","error":{"message":"transient upstream error"}}'
      exit 0
    fi;;
  *GDPR*)
    if [ -n "$BROKEN" ]; then echo "no GDPR tool" >&2; exit 4; fi;;
esac
echo '{"success":true,"output":"ok"}'
"#;

/// A seeded platform, the scenario pulled, and the agent written.
fn pulled() -> Fx {
    let fx = setup(0);
    fx.sb.write("agent.sh", AGENT);
    std::fs::create_dir_all(fx.sb.work().join("marks")).unwrap();
    fx.cmd(&["sync", "pull", "--scenario", "support-bot", "--yes"])
        .run()
        .ok();
    fx
}

/// `test` of the pulled scenario with the agent; more flags go before `--`.
fn test(fx: &Fx, flags: &[&str]) -> Cmd {
    let mut args = vec!["test", "--scenario", "support-bot"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "agent.sh"]);
    fx.cmd(&args).env("MARKS", fx.sb.work().join("marks"))
}

/// (id, text, persona id) of each pulled input, in order.
fn inputs(fx: &Fx) -> Vec<(String, String, String)> {
    let path = fx
        .sb
        .work()
        .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
    let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    items
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["messages"][0]["content"].as_str().unwrap().to_string(),
                i["persona_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What `--list` prints for these (input, iteration) runs.
fn list_of<'a>(runs: impl IntoIterator<Item = (&'a (String, String, String), u32)>) -> String {
    runs.into_iter()
        .map(|((id, text, _), it)| format!("{id}\t{it}\t{}\n", excerpt(text)))
        .collect()
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}

/// junitparser's view: counts, and per case its name, result tags and the
/// `flakyFailure` messages (junitparser has no class for them, so they are
/// read from the element it wraps).
fn junit(path: &Path) -> Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
cases = []
for suite in xml:
    for case in suite:
        cases.append({
            "name": case.name,
            "passed": case.is_passed,
            "failed": any(isinstance(r, Failure) for r in case.result),
            "skipped": any(isinstance(r, Skipped) for r in case.result),
            "flaky": [f.get("message") for f in case._elem.findall("flakyFailure")],
            "flaky_err": [f.findtext("system-err") for f in case._elem.findall("flakyFailure")],
        })
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "skipped": xml.skipped, "cases": cases}))
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

fn counts(report: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    (
        n("total"),
        n("passed"),
        n("failed"),
        n("flaky"),
        n("skipped"),
    )
}

fn is_flaky_input(text: &str) -> bool {
    text.contains("password") || text.contains("refund")
}

#[test]
fn issue_18_flaky_runs_pass_on_a_retry_and_are_counted_apart() {
    let fx = pulled();
    let md = fx.sb.write("gh/summary.md", "");
    let run = test(&fx, &["--skip-pull", "--retries", "1", "--json"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &md)
        .run();
    run.ok();
    let report = run.json();
    assert_eq!(counts(&report), (10, 10, 0, 2, 0));

    // One record per run, the final attempt, with `attempts`.
    let dir = newest_result_dir(&fx.sb);
    let records = jsonl(&dir.join("trace_summary.jsonl"));
    assert_eq!(records.len(), 10);
    for r in &records {
        let flaky = is_flaky_input(r["input"].as_str().unwrap());
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["attempts"], if flaky { 2 } else { 1 }, "{r}");
        if flaky {
            assert_eq!(
                r["failed_attempts"],
                serde_json::json!([{"message": "transient upstream error", "output": "try later", "stderr": "upstream 503"}])
            );
        } else {
            assert!(r.get("failed_attempts").is_none(), "{r}");
        }
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (&summary["flaky_count"], &summary["success_count"]),
        (&Value::from(2), &Value::from(10))
    );

    // Surefire's marks: a passing case holding a flakyFailure per failed attempt.
    let j = junit(&dir.join("junit.xml"));
    assert_eq!(
        (&j["tests"], &j["failures"], &j["skipped"]),
        (&Value::from(10), &Value::from(0), &Value::from(0))
    );
    let cases = j["cases"].as_array().unwrap();
    let flaky: Vec<&Value> = cases
        .iter()
        .filter(|c| c["flaky"] != serde_json::json!([]))
        .collect();
    assert_eq!(flaky.len(), 2, "{j}");
    for c in &flaky {
        assert_eq!(c["passed"], true);
        assert_eq!(c["flaky"], serde_json::json!(["transient upstream error"]));
        assert_eq!(c["flaky_err"], serde_json::json!(["upstream 503"]));
    }
    assert!(cases.iter().all(|c| c["passed"] == true));

    // The step summary counts them; the rest of it holds timings, hence a
    // substring.
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        // substring: the rest of the step summary holds timings
        md.contains("\n**Flaky:** 2 passed only on a retry.\n"),
        "{md}"
    );

    // The upload carries `attempts` in each run's metrics.
    let batch = fx.assert_stored_once(10);
    let mut attempts: Vec<u64> =
        fx.p.store()
            .run_results(&batch)
            .unwrap()
            .iter()
            .map(|r| r["metrics"]["attempts"].as_u64().unwrap())
            .collect();
    attempts.sort();
    assert_eq!(attempts, [1, 1, 1, 1, 1, 1, 1, 1, 2, 2]);

    // Without retries the same agent fails those two runs.
    std::fs::remove_dir_all(fx.sb.work().join("marks")).unwrap();
    std::fs::create_dir_all(fx.sb.work().join("marks")).unwrap();
    let run = test(&fx, &["--skip-pull", "--skip-upload", "--json"]).run();
    run.code(10);
    assert_eq!(counts(&run.json()), (10, 8, 2, 0, 0));
}

#[test]
fn issue_18_the_human_summary_states_flaky_skipped_and_the_threshold() {
    let fx = pulled();
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--skip-upload",
            "--retries",
            "1",
            "--fail-under",
            "0.9",
        ],
    )
    .env("BROKEN", "1")
    .run();
    run.ok();
    // The table around these lines holds the wall time, hence substrings.
    assert!(
        run.stdout
            .starts_with("PASSED support-bot: 9 of 10 runs passed\n"),
        "{}",
        run.stdout
    );
    // substring: the run table around it holds wall times and random input ids
    run.stdout_has("\nFlaky: 2 runs passed only on a retry (flakyFailure in junit.xml)\n")
        .stdout_has("\nPass rate threshold 90.0%: met\n");

    let md = fx.sb.write("gh/summary.md", "");
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--skip-upload",
            "--max-failures",
            "1",
            "--grep",
            "GDPR",
            "-n",
            "3",
            "--fail-under",
            "0.5",
        ],
    )
    .env("BROKEN", "1")
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_STEP_SUMMARY", &md)
    .run();
    run.code(10);
    // Annotations come first under GitHub Actions, and the table holds times.
    // substring: the annotations come first and the run table holds wall times
    run.stdout_has("\nFAILED support-bot: 0 of 1 runs passed\n");
    // substring: the annotations come first and the run table holds wall times
    run.stdout_has("\nSkipped: 2 runs not started, as --max-failures was reached\n")
        .stdout_has("\nPass rate threshold 50.0%: not met\n");
    // The step summary also holds the wall time, hence substrings.
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("### ❌ FluxLoop: support-bot\n"), "{md}");
    // substring: the rest of the step summary holds timings
    assert!(md.contains("\n**Skipped:** 2 not started, as `--max-failures` was reached.\n\nPass rate threshold 50.0%: not met\n"), "{md}");
}

#[test]
fn issue_18_thresholds_give_the_documented_exit_codes() {
    let fx = pulled();
    // 9 of 10 pass: the GDPR input always fails; retries make the others pass.
    let at = |flags: &[&str]| {
        let mut all = vec!["--skip-pull", "--skip-upload", "--retries", "1", "--json"];
        all.extend_from_slice(flags);
        let run = test(&fx, &all).env("BROKEN", "1").run();
        (run.code, run.json())
    };
    let (code, r) = at(&["--fail-under", "0.9"]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(
        r["threshold"],
        serde_json::json!({"pass_rate": 0.9, "met": true})
    );
    assert_eq!(counts(&r), (10, 9, 1, 2, 0));
    let (code, r) = at(&["--fail-under", "0.95"]);
    assert_eq!(code, Some(10), "{r}");
    assert_eq!(
        r["threshold"],
        serde_json::json!({"pass_rate": 0.95, "met": false})
    );
    let (code, r) = at(&[]);
    assert_eq!(code, Some(10), "{r}");
    assert!(r.get("threshold").is_none());

    // test.pass_rate in fluxloop.yaml, and the flag over it.
    fx.sb.write("fluxloop.yaml", "test:\n  pass_rate: 0.9\n");
    assert_eq!(at(&[]).0, Some(0));
    assert_eq!(at(&["--fail-under", "1"]).0, Some(10));
    fx.sb.write("fluxloop.yaml", "test:\n  pass_rate: 1.5\n");
    let run = test(&fx, &["--skip-pull", "--skip-upload"]).run();
    run.code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: {}:2:14: test.pass_rate: must be a success rate from 0 to 1 (e.g. 0.95), not 1.5\n  hint: see the fluxloop.yaml reference in README.md\n",
            fx.sb.work().join("fluxloop.yaml").display()
        )
    );
    std::fs::remove_file(fx.sb.work().join("fluxloop.yaml")).unwrap();

    // --max-failures: after the first failure nothing new starts; the rest
    // are skipped, in JUnit too, and the exit is 10 even above the threshold.
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--skip-upload",
            "--max-failures",
            "1",
            "--grep",
            "GDPR",
            "-n",
            "3",
            "--fail-under",
            "0",
            "--json",
        ],
    )
    .env("BROKEN", "1")
    .run();
    run.code(10);
    assert_eq!(counts(&run.json()), (1, 0, 1, 0, 2));
    let j = junit(&newest_result_dir(&fx.sb).join("junit.xml"));
    assert_eq!(
        (&j["tests"], &j["failures"], &j["skipped"]),
        (&Value::from(3), &Value::from(1), &Value::from(2))
    );
    let skipped: Vec<&Value> = j["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["skipped"] == true)
        .collect();
    assert_eq!(skipped.len(), 2);
    let input = inputs(&fx)
        .into_iter()
        .find(|i| i.1.contains("GDPR"))
        .unwrap();
    assert_eq!(
        skipped[0]["name"],
        format!(
            "#2 {} [input {}, iteration 1]",
            excerpt(&input.1),
            &input.0[..8]
        )
    );
}

#[test]
fn issue_18_list_prints_the_chosen_runs_and_runs_nothing() {
    let fx = pulled();
    let all = inputs(&fx);
    let requests_before = fx.p.requests().len();
    // Without --skip-pull: the pull happens, nothing else reaches the platform.
    let run = test(&fx, &["--list", "-n", "2"]).run();
    run.ok();
    assert_eq!(
        run.stdout,
        list_of(all.iter().map(|i| (i, 0)).chain(all.iter().map(|i| (i, 1))))
    );
    let paths: Vec<String> = fx.p.requests()[requests_before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    // The pull's own requests (key scope, project and scenario lookup, pull), no more.
    assert_eq!(
        paths,
        [
            "/api/api-keys/self",
            "/api/projects",
            "/api/scenarios",
            "/api/sync/pull"
        ]
    );
    assert!(!fx.sb.work().join(".fluxloop/results").exists());
    assert!(!fx.sb.work().join("marks/starts").exists());

    let list = |flags: &[&str]| {
        let mut f = vec!["--skip-pull", "--list"];
        f.extend_from_slice(flags);
        let run = test(&fx, &f).run();
        run.ok();
        run.stdout.clone()
    };
    assert_eq!(
        list(&["--input", &all[3].0, "--input", &all[1].0]),
        list_of([(&all[1], 0), (&all[3], 0)])
    );
    assert_eq!(
        list(&["--grep", "ORDER"]),
        list_of(
            all.iter()
                .filter(|i| i.1.to_lowercase().contains("order"))
                .map(|i| (i, 0))
        )
    );
    let personas: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            fx.sb
                .work()
                .join(".fluxloop/scenarios/support-bot/pulled/personas.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let busy = personas
        .iter()
        .find(|p| p["name"] == "Busy professional")
        .unwrap();
    let busy_inputs = || {
        all.iter()
            .filter(|i| i.2 == busy["id"].as_str().unwrap())
            .map(|i| (i, 0))
    };
    assert!(busy_inputs().count() > 0);
    assert_eq!(
        list(&["--persona", "busy professional"]),
        list_of(busy_inputs())
    );
    assert_eq!(
        list(&["--persona", busy["id"].as_str().unwrap()]),
        list_of(busy_inputs())
    );
}

#[test]
fn issue_18_bad_selections_are_one_line_errors() {
    let fx = pulled();
    let run = test(&fx, &["--skip-pull", "--list", "--input", "nope"]).run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: --input nope: no pulled input has this id\n  hint: `fluxloop test --list` prints the runs with their input ids\n"
    );
    let run = test(&fx, &["--skip-pull", "--list", "--grep", "zzz-none"]).run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: no run matches the selection (--input, --persona, --grep, --last-failed)\n  hint: `fluxloop test --list` without them prints every run\n"
    );
    let run = test(&fx, &["--skip-pull", "--list", "--persona", "Nobody"]).run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: --persona Nobody: no such persona in the pulled scenario (personas: Frustrated customer, Busy professional, First-time shopper)\n"
    );
    let run = test(&fx, &["--skip-pull", "--last-failed"]).run();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: --last-failed: scenario support-bot has no earlier results to rerun the failures of\n  hint: run `fluxloop test` first; its failed runs are then what --last-failed reruns\n"
    );
}

#[test]
fn issue_18_last_failed_reruns_only_the_failures() {
    let fx = pulled();
    let all = inputs(&fx);
    let gdpr = all.iter().find(|i| i.1.contains("GDPR")).unwrap();
    test(&fx, &["--skip-pull", "--skip-upload", "-n", "2"])
        .env("BROKEN", "1")
        .run()
        .code(10);
    let first = newest_result_dir(&fx.sb);
    // The flaky inputs failed too (no retries): 3 inputs × 2 iterations.
    let failed: Vec<_> = [0, 1]
        .into_iter()
        .flat_map(|it| {
            all.iter()
                .filter(|i| is_flaky_input(&i.1) || i.1.contains("GDPR"))
                .map(move |i| (i, it))
        })
        .collect();
    let run = test(&fx, &["--skip-pull", "--last-failed", "--list"]).run();
    run.ok();
    assert_eq!(run.stdout, list_of(failed));
    // Rerun with a retry: the flaky ones pass, GDPR still fails.
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--skip-upload",
            "--last-failed",
            "--retries",
            "1",
            "--json",
        ],
    )
    .env("BROKEN", "1")
    .run();
    run.code(10);
    assert_eq!(counts(&run.json()), (6, 4, 2, 4, 0));
    let run = test(&fx, &["--skip-pull", "--last-failed", "--list"]).run();
    assert_eq!(run.stdout, list_of([(gdpr, 0), (gdpr, 1)]));
    let run = test(
        &fx,
        &["--skip-pull", "--skip-upload", "--last-failed", "--json"],
    )
    .run();
    run.ok();
    assert_eq!(counts(&run.json()), (2, 2, 0, 0, 0));
    let third = newest_result_dir(&fx.sb);
    assert_ne!(first, third);
    // Nothing failed last time: nothing to rerun, and nothing is run.
    let run = test(&fx, &["--skip-pull", "--skip-upload", "--last-failed"]).run();
    run.ok();
    assert_eq!(
        run.stdout,
        format!(
            "Nothing to rerun: no run of support-bot failed in .fluxloop/results/{}\n",
            third.file_name().unwrap().to_string_lossy()
        )
    );
    assert_eq!(newest_result_dir(&fx.sb), third);
}

#[test]
fn issue_18_dry_run_prints_the_whole_plan_and_calls_nothing() {
    let fx = pulled();
    let all = inputs(&fx);
    let before = fx.p.requests().len();
    let starts = fx.sb.work().join("marks/starts");
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--dry-run",
            "-j",
            "4",
            "--timeout",
            "30",
            "--retries",
            "2",
            "--rate",
            "5/s",
            "--grep",
            "password",
        ],
    )
    .run();
    run.ok();
    let pw = all.iter().find(|i| i.1.contains("password")).unwrap();
    let key = &fx.demo.key;
    let prefix = ["flx_sa_", "flx_api_", "flx_"]
        .into_iter()
        .find(|p| key.starts_with(p))
        .unwrap();
    let masked = format!("{prefix}****{}", &key[key.len() - 4..]);
    assert_eq!(
        run.stdout,
        format!(
            "Dry run of support-bot: 1 run, nothing is run or uploaded

  command      sh agent.sh
  parallel     1
  timeout      30.0 s
  retries      2
  rate         5/s
  max failures unlimited
  pass rate    every run must pass
  results      .fluxloop/results/support-bot-YYYYmmdd-HHMMSS/
  upload to    {} (environment variable FLUXLOOP_API_ENDPOINT)
  credential   {masked} (environment variable FLUXLOOP_API_KEY)

Runs (input id, iteration, input):
{}",
            fx.p.url(),
            list_of([(pw, 0)])
        )
    );
    run.no_secret(key);
    assert_eq!(fx.p.requests().len(), before, "the platform was called");
    assert!(!starts.exists(), "the agent ran");
    assert!(!fx.sb.work().join(".fluxloop/results").exists());

    let run = test(
        &fx,
        &["--skip-pull", "--skip-upload", "--dry-run", "--json"],
    )
    .run();
    run.ok();
    let plan = run.json();
    assert_eq!(plan["runs"].as_array().unwrap().len(), 10);
    assert_eq!(plan["upload"], Value::Null);
    assert_eq!(plan["command"], "sh agent.sh");
}

#[test]
fn issue_18_rate_spaces_the_run_starts_whatever_the_parallelism() {
    let fx = pulled();
    let run = test(
        &fx,
        &[
            "--skip-pull",
            "--skip-upload",
            "--rate",
            "5/s",
            "-j",
            "8",
            "--retries",
            "1",
        ],
    )
    .run();
    run.ok();
    let text = std::fs::read_to_string(fx.sb.work().join("marks/starts")).unwrap();
    let mut starts: Vec<f64> = text.lines().map(|l| l.parse().unwrap()).collect();
    starts.sort_by(f64::total_cmp);
    assert_eq!(starts.len(), 12, "10 runs and 2 retries");
    // 12 starts at 5/s span at least 11 intervals of 200 ms; the bound
    // leaves room for the spawn latency of the first agent.
    let span = starts[11] - starts[0];
    assert!(
        span >= 1.9,
        "12 starts within {span:.3}s at 5/s: {starts:?}"
    );
    // And test.rate in fluxloop.yaml does the same.
    std::fs::remove_file(fx.sb.work().join("marks/starts")).unwrap();
    fx.sb
        .write("fluxloop.yaml", "test:\n  rate: 120/m\n  parallel: 8\n");
    test(&fx, &["--skip-pull", "--skip-upload", "--grep", "order"])
        .run()
        .ok();
    let text = std::fs::read_to_string(fx.sb.work().join("marks/starts")).unwrap();
    let mut starts: Vec<f64> = text.lines().map(|l| l.parse().unwrap()).collect();
    starts.sort_by(f64::total_cmp);
    let n = starts.len();
    assert!(n >= 3, "{starts:?}");
    let span = starts[n - 1] - starts[0];
    let want = (n - 1) as f64 * 0.5 - 0.3;
    assert!(
        span >= want,
        "{n} starts within {span:.3}s at 120/m: {starts:?}"
    );
}
