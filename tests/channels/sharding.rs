//! Issue 17, item 9: the sharding examples (`examples/sharding/`) run by each
//! CI's own runner against a real `fluxloop-platform` with the real binary:
//! 4 shards fill one run batch with every run once, and the fan-in job's
//! verdict is the batch's. The Kubernetes Job is validated against the
//! Kubernetes schema and its 4 pods run as processes with the env it gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::act::{self, Act};
use crate::util::{self, Ran};

fn example(rel: &str) -> PathBuf {
    util::repo().join("examples/sharding").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(example(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The batch of `key` as `GET /api/run-batches?key=` answers it.
fn batch(demo: &util::Demo, key: &str) -> Value {
    let url = format!(
        "{}/api/run-batches?key={}",
        demo.url,
        key.replace(':', "%3A")
    );
    let mut resp = ureq::get(&url)
        .header("Authorization", &format!("Bearer {}", demo.key))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_reader(resp.body_mut().as_reader()).expect("batch json")
}

/// The only batch on the platform is `key`'s, completed by 4 shards, and
/// holds each of the scenario's inputs exactly once.
#[track_caller]
fn one_batch_every_run_once(demo: &util::Demo, key: &str, log: &str) -> Value {
    let b = batch(demo, key);
    assert_eq!(
        demo.platform.batch_ids().expect("batches"),
        [b["id"].as_str().expect("id").to_string()],
        "{log}"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in b["runs"].as_array().expect("runs") {
        *seen
            .entry(r["input_item_id"].as_str().expect("input").to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 10, "the demo's 10 inputs: {seen:?}\n{log}");
    assert!(
        seen.values().all(|&n| n == 1),
        "a run stored twice: {seen:?}"
    );
    assert_eq!(b["status"], "completed", "{log}");
    let per_shard: Vec<u64> = b["shards"]["reported"]
        .as_array()
        .expect("reported")
        .iter()
        .map(|s| s["runs"].as_u64().expect("runs"))
        .collect();
    assert_eq!(per_shard, [3, 3, 2, 2], "{log}");
    b
}

/// The fan-in line of `report` (a substring: each runner prefixes its lines).
fn verdict(b: &Value, passed: bool) -> String {
    let id = b["id"].as_str().expect("id");
    // Without the PASSED/FAILED word, which act's TTY colours.
    let passed = if passed { 10 } else { 0 };
    format!(" run batch {id}: {passed} of 10 runs passed from 4 shards\n")
}

fn no_key(demo: &util::Demo, ran: &Ran) {
    assert!(
        !ran.stdout.contains(&demo.key) && !ran.stderr.contains(&demo.key),
        "the key is in the log\n{}",
        ran.all()
    );
}

// --- GitHub Actions under act ----------------------------------------------

fn run_github(failing: bool) -> (util::Demo, Ran) {
    let wf = read("github/fluxloop-sharded.yml");
    assert!(
        wf.contains(&format!("uses: {}", act::action_ref())),
        "the example pins this release's action"
    );
    // As written: each job downloads the release build from a mirror and
    // checks its signature, as a consumer's runner would.
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), false);
    let server = util::FileServer::serve(site.path());
    let demo = util::demo_platform();
    let mut act = Act::new();
    util::write_agent_project(&act.repo(), &demo.scenario, failing);
    act::commit(&act);
    act.secret("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", &demo.url)
        .env("FLUXLOOP_RELEASE_URL", &server.url);
    let ran = act.run(&wf);
    (demo, ran)
}

#[test]
#[ignore = "needs act"]
fn github_matrix_example_fills_one_batch_and_the_report_job_passes() {
    let (demo, ran) = run_github(false);
    no_key(&demo, &ran);
    // act sets GITHUB_RUN_ID=1 and GITHUB_RUN_ATTEMPT=1.
    let b = one_batch_every_run_once(&demo, &format!("github:1.1:{}", demo.scenario), &ran.all());
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(!ran.stdout.contains("🏁  Job failed"), "{}", ran.all());
    assert!(ran.stdout.contains(&verdict(&b, true)), "{}", ran.all());
}

#[test]
#[ignore = "needs act"]
fn github_matrix_example_report_job_fails_when_runs_failed() {
    let (demo, ran) = run_github(true);
    let b = one_batch_every_run_once(&demo, &format!("github:1.1:{}", demo.scenario), &ran.all());
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    assert!(ran.stdout.contains(&verdict(&b, false)), "{}", ran.all());
    assert!(act::exit_status(&ran, 10), "{}", ran.all());
}

// --- GitLab under gitlab-ci-local --------------------------------------------

/// The example with its remote include pointed at the local template and the
/// `image:`s dropped (the shell executor runs on this machine; the test job's
/// template takes fluxloop from PATH, as it does in an image that has it).
fn gitlab_ci() -> String {
    let mut ci: Value = serde_saphyr::from_str(&read("gitlab/.gitlab-ci.yml")).expect("parse");
    let remote = ci["include"][0]["remote"]
        .as_str()
        .expect("remote")
        .to_string();
    assert!(
        remote.ends_with(&format!(
            "/v{}/ci-templates/gitlab/fluxloop.gitlab-ci.yml",
            util::VERSION
        )),
        "{remote}"
    );
    ci["include"] = serde_json::json!([{ "local": "ci/fluxloop.gitlab-ci.yml" }]);
    for job in ["fluxloop", "fluxloop-report"] {
        ci[job].as_object_mut().expect("job").remove("image");
    }
    // The report job's image sets no image here; it must still use PATH's.
    ci["fluxloop-report"]["image"] = Value::Null;
    ci["fluxloop-report"]
        .as_object_mut()
        .expect("job")
        .remove("image");
    serde_json::to_string_pretty(&ci).expect("json")
}

fn run_gitlab(failing: bool) -> (util::Demo, tempfile::TempDir, Ran) {
    let glc = crate::gitlab::tools();
    let demo = util::demo_platform();
    let repo = crate::gitlab::repository(&gitlab_ci(), &demo, failing);
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".gitlab-ci-local")).expect("mkdir");
    std::fs::write(
        home.path().join(".gitlab-ci-local/variables.yml"),
        format!(
            "global:\n  FLUXLOOP_API_KEY: {}\n  FLUXLOOP_API_ENDPOINT: {}\n",
            demo.key, demo.url
        ),
    )
    .expect("variables");
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let bin = util::release_on_path(bin_dir.path());
    let mut cmd = Command::new(glc);
    cmd.arg("--shell-isolation")
        .arg("--home")
        .arg(home.path())
        .arg("--color=false")
        .current_dir(repo.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    for (k, _) in std::env::vars() {
        if k.starts_with("FLUXLOOP_") || k.starts_with("GITHUB_") || k.starts_with("CI_") {
            cmd.env_remove(k);
        }
    }
    let ran = util::run_bounded(cmd, Duration::from_secs(600));
    (demo, repo, ran)
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_parallel_example_fills_one_batch_and_the_report_job_passes() {
    let (demo, repo, ran) = run_gitlab(false);
    no_key(&demo, &ran);
    // gitlab-ci-local's pipeline id.
    let b = one_batch_every_run_once(&demo, &format!("gitlab:1000:{}", demo.scenario), &ran.all());
    assert!(ran.ok(), "{}", ran.all());
    assert!(ran.stdout.contains(&verdict(&b, true)), "{}", ran.all());
    let junit = std::fs::read_to_string(
        repo.path()
            .join(".gitlab-ci-local/artifacts/fluxloop-report/junit.xml"),
    )
    .expect("the merged junit.xml is the report job's artifact");
    assert_eq!(junit.matches("<testcase").count(), 10, "{junit}");
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_parallel_example_report_job_fails_when_runs_failed() {
    let (demo, _repo, ran) = run_gitlab(true);
    let b = one_batch_every_run_once(&demo, &format!("gitlab:1000:{}", demo.scenario), &ran.all());
    assert!(!ran.ok(), "{}", ran.all());
    assert!(ran.stdout.contains(&verdict(&b, false)), "{}", ran.all());
}

#[test]
#[ignore = "needs check-jsonschema"]
fn gitlab_example_matches_the_gitlab_ci_schema() {
    let tool = util::require("check-jsonschema", "pip install check-jsonschema==0.39.0");
    let mut c = Command::new(tool);
    c.args(["--builtin-schema", "vendor.gitlab-ci"])
        .arg(example("gitlab/.gitlab-ci.yml"));
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(ran.ok(), "{}", ran.all());
}

// --- Jenkins under the Groovy harness ------------------------------------------

fn run_jenkins(failing: bool) -> (util::Demo, tempfile::TempDir, Ran) {
    let groovy = util::require("groovy", "apt-get install -y groovy");
    let demo = util::demo_platform();
    let root = tempfile::tempdir().expect("tempdir");
    let ws = root.path().join("workspace");
    util::write_agent_project(&ws, &demo.scenario, failing);
    for d in ["archive", "home"] {
        std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
    }
    let creds = root.path().join("credentials");
    std::fs::write(&creds, format!("fluxloop-api-key={}\n", demo.key)).expect("credentials");
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let bin = util::release_on_path(bin_dir.path());
    let mut c = Command::new(groovy);
    c.arg(util::repo().join("tests/channels/jenkins-harness.groovy"))
        .arg(example("jenkins/Jenkinsfile"))
        .arg(&ws)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("HOME", root.path().join("home"))
        .env("LANG", "C.UTF-8")
        .env("FLUXLOOP_API_ENDPOINT", &demo.url)
        // What Jenkins sets for every build of job `agent`, number 7.
        .env("JOB_NAME", "agent")
        .env("BUILD_NUMBER", "7")
        .env("BUILD_TAG", "jenkins-agent-7")
        .env("HARNESS_CREDENTIALS", &creds)
        .env("HARNESS_ARCHIVE", root.path().join("archive"));
    if let Some(h) = std::env::var_os("JAVA_HOME") {
        c.env("JAVA_HOME", h);
    } else if let Some(java) = util::which("java").and_then(|j| j.canonicalize().ok()) {
        if let Some(h) = java.parent().and_then(Path::parent) {
            c.env("JAVA_HOME", h);
        }
    }
    let ran = util::run_bounded(c, Duration::from_secs(300));
    (demo, root, ran)
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_parallel_example_fills_one_batch_and_the_report_stage_passes() {
    let (demo, _root, ran) = run_jenkins(false);
    no_key(&demo, &ran);
    let b = one_batch_every_run_once(
        &demo,
        &format!("jenkins:jenkins-agent-7:{}", demo.scenario),
        &ran.all(),
    );
    assert!(ran.stdout.ends_with("Finished: SUCCESS\n"), "{}", ran.all());
    assert!(ran.stdout.contains(&verdict(&b, true)), "{}", ran.all());
    for i in 1..=4 {
        assert!(
            ran.stdout
                .contains(&format!("[Shard {i}] [Pipeline] stage (Shard {i})\n")),
            "{}",
            ran.all()
        );
    }
    assert!(
        ran.stdout
            .contains("junit: 10 tests, 0 failures in 1 report(s)\n"),
        "{}",
        ran.all()
    );
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_parallel_example_reports_failed_runs_and_fails_the_build() {
    let (demo, _root, ran) = run_jenkins(true);
    let b = one_batch_every_run_once(
        &demo,
        &format!("jenkins:jenkins-agent-7:{}", demo.scenario),
        &ran.all(),
    );
    assert!(ran.stdout.ends_with("Finished: FAILURE\n"), "{}", ran.all());
    // Every shard failed, and still the Report stage ran.
    assert_eq!(
        ran.stdout
            .matches("ERROR: script returned exit code 10\n")
            .count(),
        5,
        "{}",
        ran.all()
    );
    assert!(ran.stdout.contains(&verdict(&b, false)), "{}", ran.all());
    assert!(
        ran.stdout
            .contains("junit: 10 tests, 10 failures in 1 report(s)\n"),
        "{}",
        ran.all()
    );
}

// --- Kubernetes Indexed Job ------------------------------------------------------

#[test]
#[ignore = "needs kubernetes-validate"]
fn kubernetes_job_matches_the_kubernetes_schema() {
    let tool = util::require(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0",
    );
    let mut c = Command::new(tool);
    c.arg("--strict")
        .arg(util::repo().join("examples/kubernetes/sharded-job.yaml"));
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(
        ran.ok()
            && ran
                .stdout
                .contains("passed for resource job/fluxloop-support-bot"),
        "{}",
        ran.all()
    );
}

/// The env of the Job's container as the kubelet resolves it: literal
/// values, and the Secret, ConfigMap and Job label its refs name.
fn pod_env(job: &Value, cluster: &BTreeMap<&str, String>) -> Vec<(String, String)> {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else {
                let from = &e["valueFrom"];
                let r = if let Some(s) = from.get("secretKeyRef") {
                    format!(
                        "secret/{}/{}",
                        s["name"].as_str().unwrap(),
                        s["key"].as_str().unwrap()
                    )
                } else if let Some(c) = from.get("configMapKeyRef") {
                    format!(
                        "configmap/{}/{}",
                        c["name"].as_str().unwrap(),
                        c["key"].as_str().unwrap()
                    )
                } else if let Some(f) = from.get("fieldRef") {
                    format!("field/{}", f["fieldPath"].as_str().unwrap())
                } else {
                    panic!("env {name}: a source this test does not resolve: {from}")
                };
                cluster
                    .get(r.as_str())
                    .unwrap_or_else(|| panic!("env {name}: {r} is not in the cluster"))
                    .clone()
            };
            (name, value)
        })
        .collect()
}

#[test]
fn kubernetes_job_pods_fill_one_batch_with_every_run_once() {
    let job = util::read_yaml(&util::repo().join("examples/kubernetes/sharded-job.yaml"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 4);
    let demo = util::demo_platform();
    let uid = "3f1c2a9e-7b5d-4e1a-9c2f-0d8e6b4a1c7f";
    let cluster = BTreeMap::from([
        ("secret/fluxloop/api-key", demo.key.clone()),
        ("configmap/fluxloop/endpoint", demo.url.clone()),
        (
            "field/metadata.labels['batch.kubernetes.io/controller-uid']",
            uid.to_string(),
        ),
    ]);
    let env = pod_env(&job, &cluster);
    assert!(
        env.contains(&("FLUXLOOP_SHARD_TOTAL".into(), "4".into())),
        "{env:?}"
    );
    let command: Vec<String> = spec["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    assert_eq!(command[0], "fluxloop");
    let pods: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            // Each pod: its own filesystem (the image's workingDir), nothing
            // but the manifest's env and the index Kubernetes adds.
            util::write_agent_project(pod.path(), &demo.scenario, false);
            let mut c = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
            c.args(&command[1..])
                .current_dir(pod.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", pod.path().join("home"))
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn pod")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "pod {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let b = one_batch_every_run_once(&demo, &format!("{uid}:{}", demo.scenario), "");
    // The fan-in the manifest's comment gives, from another machine.
    let fan_in = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
    c.args([
        "report",
        "--wait",
        "--scenario",
        &demo.scenario,
        "--batch-key",
        uid,
    ])
    .current_dir(fan_in.path())
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("HOME", fan_in.path().join("home"))
    .env("FLUXLOOP_API_KEY", &demo.key)
    .env("FLUXLOOP_API_ENDPOINT", &demo.url);
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(ran.ok(), "{}", ran.all());
    assert!(
        ran.stdout
            .starts_with(&format!("PASSED{}", verdict(&b, true))),
        "{}",
        ran.all()
    );
}

// --- Lints -------------------------------------------------------------------

#[test]
#[ignore = "needs actionlint"]
fn github_example_passes_actionlint_and_zizmor() {
    let file = example("github/fluxloop-sharded.yml");
    util::actionlint(std::slice::from_ref(&file));
    util::zizmor(&[file]);
}

#[test]
#[ignore = "needs npm-groovy-lint"]
fn jenkins_example_passes_codenarc() {
    let ran = crate::jenkins::codenarc(&[example("jenkins/Jenkinsfile")]);
    assert!(ran.ok(), "{}", ran.all());
}

/// The action's sharding inputs: optional, and reaching the scripts only
/// through `env:` (the rule `action_yml_keeps_its_rules` checks for all).
#[test]
fn action_has_optional_shard_batch_key_and_mode_inputs() {
    let action = util::read_yaml(&util::repo().join("action.yml"));
    let inputs = &action["inputs"];
    for (name, default) in [("shard", ""), ("batch-key", ""), ("mode", "test")] {
        assert_eq!(inputs[name]["required"], false, "{name}");
        assert_eq!(inputs[name]["default"], default, "{name}");
    }
    let run = action["runs"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "run")
        .expect("step run");
    for (var, input) in [
        ("INPUT_SHARD", "shard"),
        ("INPUT_BATCH_KEY", "batch-key"),
        ("INPUT_MODE", "mode"),
    ] {
        assert_eq!(
            run["env"][var],
            format!("${{{{ inputs.{input} }}}}"),
            "{var}"
        );
    }
}
