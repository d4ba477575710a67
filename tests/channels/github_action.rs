//! `action.yml` executed the way the GitHub runner executes a composite
//! action: a stand-in runner reads the file, evaluates the `${{ }}`
//! expressions it uses (inputs, step outputs, github/runner context), runs each
//! `run:` step with its `shell:` in a clean environment carrying the runner's
//! variables (`GITHUB_OUTPUT`, `GITHUB_PATH`, `GITHUB_STEP_SUMMARY`,
//! `RUNNER_TOOL_CACHE`, …), reads the files back, honours `::add-mask::`, and
//! stops at the first failing step. Releases come from a local file server
//! holding the real release build; the platform is a real `fluxloop-platform`.
//!
//! As on GitHub, a composite action's steps get no automatic `INPUT_*`
//! variables: the action has to map each input through `env:` itself, so the
//! stand-in does not set them either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, FileServer, Ran};

/// One step as run.
struct StepRun {
    id: String,
    ran: Ran,
    outputs: BTreeMap<String, String>,
}

/// The whole action as run.
struct ActionRun {
    steps: Vec<StepRun>,
    outputs: BTreeMap<String, String>,
    /// The job's step summary (`$GITHUB_STEP_SUMMARY` of every step).
    summary: String,
    /// Values registered with `::add-mask::`.
    masks: Vec<String>,
    /// Exit code of the failing step, `None` when all passed.
    failed: Option<i32>,
}

impl ActionRun {
    fn step(&self, id: &str) -> Option<&StepRun> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Every byte the steps printed, for assertions.
    fn log(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("=== step {}\n{}", s.id, s.ran.all()))
            .collect()
    }
}

/// A stand-in GitHub runner for one job: workspace, temp, tool cache.
struct Runner {
    root: tempfile::TempDir,
    /// Job-level `env:` (what the workflow sets around the step).
    job_env: BTreeMap<String, String>,
}

impl Runner {
    fn new() -> Runner {
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["workspace", "temp", "toolcache", "home", "files"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        Runner {
            root,
            job_env: BTreeMap::new(),
        }
    }

    fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    fn tool_cache(&self) -> PathBuf {
        self.root.path().join("toolcache")
    }

    /// Runs `uses: ./` (this repository's action.yml) `with:` these inputs.
    fn run_action(&self, with: &[(&str, &str)]) -> ActionRun {
        let action = util::read_yaml(&util::repo().join("action.yml"));
        assert_eq!(
            action["runs"]["using"], "composite",
            "action.yml must be a composite action"
        );

        let mut inputs = BTreeMap::new();
        for (name, spec) in action["inputs"].as_object().expect("inputs") {
            inputs.insert(
                name.clone(),
                spec["default"].as_str().unwrap_or("").to_string(),
            );
        }
        for (k, v) in with {
            assert!(inputs.contains_key(*k), "action.yml has no input {k}");
            inputs.insert(k.to_string(), v.to_string());
        }

        let mut ctx = Ctx {
            inputs,
            steps: BTreeMap::new(),
        };
        let mut path_prefix: Vec<String> = Vec::new();
        let mut added_env: BTreeMap<String, String> = BTreeMap::new();
        let mut run = ActionRun {
            steps: Vec::new(),
            outputs: BTreeMap::new(),
            summary: String::new(),
            masks: Vec::new(),
            failed: None,
        };

        let steps = action["runs"]["steps"].as_array().expect("steps");
        for (i, step) in steps.iter().enumerate() {
            assert!(
                step.get("uses").is_none(),
                "the action runs no other actions (none are reachable offline)"
            );
            assert!(
                step.get("if").is_none(),
                "the stand-in runner only knows the default if: success()"
            );
            let id = step["id"]
                .as_str()
                .map(String::from)
                .unwrap_or(format!("step{i}"));
            let shell = step["shell"]
                .as_str()
                .expect("every run step names its shell");
            let script = step["run"].as_str().expect("run");
            assert!(
                !script.contains("${{"),
                "step {id}: expressions in run: scripts are forbidden"
            );

            let files = self.root.path().join("files").join(&id);
            std::fs::create_dir_all(&files).expect("mkdir");
            let gh_output = files.join("output");
            let gh_path = files.join("path");
            let gh_env = files.join("env");
            let gh_summary = files.join("summary");
            for f in [&gh_output, &gh_path, &gh_env, &gh_summary] {
                std::fs::write(f, "").expect("touch");
            }
            let script_file = files.join("script");
            std::fs::write(&script_file, script).expect("write script");

            let mut cmd = match shell {
                "bash" => {
                    let mut c = std::process::Command::new("bash");
                    c.args(["--noprofile", "--norc", "-eo", "pipefail"]);
                    c
                }
                "sh" => {
                    let mut c = std::process::Command::new("sh");
                    c.arg("-e");
                    c
                }
                other => {
                    panic!("step {id}: shell {other} is not one a Linux runner has by default")
                }
            };
            cmd.arg(&script_file);
            let wd = match step.get("working-directory").and_then(Value::as_str) {
                Some(w) => self.workspace().join(ctx.eval(w)),
                None => self.workspace(),
            };
            cmd.current_dir(&wd).env_clear();

            let mut path = path_prefix.iter().rev().cloned().collect::<Vec<_>>();
            path.push(std::env::var("PATH").unwrap_or_default());
            let r = self.root.path();
            let mut env: BTreeMap<String, String> = [
                ("PATH", path.join(":")),
                ("HOME", r.join("home").display().to_string()),
                ("CI", "true".into()),
                ("GITHUB_ACTIONS", "true".into()),
                ("GITHUB_WORKSPACE", self.workspace().display().to_string()),
                ("GITHUB_ACTION_PATH", util::repo().display().to_string()),
                ("GITHUB_OUTPUT", gh_output.display().to_string()),
                ("GITHUB_PATH", gh_path.display().to_string()),
                ("GITHUB_ENV", gh_env.display().to_string()),
                ("GITHUB_STEP_SUMMARY", gh_summary.display().to_string()),
                ("GITHUB_REPOSITORY", "acme/support-bot".into()),
                ("GITHUB_SERVER_URL", "https://github.com".into()),
                (
                    "GITHUB_SHA",
                    "0123456789abcdef0123456789abcdef01234567".into(),
                ),
                ("GITHUB_REF", "refs/heads/main".into()),
                ("GITHUB_REF_NAME", "main".into()),
                ("GITHUB_RUN_ID", "4242".into()),
                ("GITHUB_RUN_ATTEMPT", "1".into()),
                ("GITHUB_EVENT_NAME", "push".into()),
                ("RUNNER_OS", "Linux".into()),
                ("RUNNER_ARCH", runner_arch().into()),
                ("RUNNER_TEMP", r.join("temp").display().to_string()),
                ("RUNNER_TOOL_CACHE", self.tool_cache().display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            env.extend(self.job_env.clone());
            env.extend(added_env.clone());
            if let Some(step_env) = step.get("env").and_then(Value::as_object) {
                for (k, v) in step_env {
                    let v = match v {
                        Value::String(s) => ctx.eval(s),
                        other => other.to_string(),
                    };
                    env.insert(k.clone(), v);
                }
            }
            cmd.envs(&env);

            let ran = util::run_bounded(cmd, Duration::from_secs(300));
            for line in ran.stdout.lines() {
                if let Some(m) = line.strip_prefix("::add-mask::") {
                    run.masks.push(m.to_string());
                }
            }
            let outputs = parse_output_file(
                &std::fs::read_to_string(&gh_output).expect("read GITHUB_OUTPUT"),
            );
            for line in std::fs::read_to_string(&gh_path)
                .expect("read GITHUB_PATH")
                .lines()
            {
                if !line.trim().is_empty() {
                    path_prefix.push(line.trim().to_string());
                }
            }
            added_env.extend(parse_output_file(
                &std::fs::read_to_string(&gh_env).expect("read GITHUB_ENV"),
            ));
            run.summary
                .push_str(&std::fs::read_to_string(&gh_summary).expect("read summary"));
            ctx.steps.insert(id.clone(), outputs.clone());
            let code = ran.code;
            run.steps.push(StepRun { id, ran, outputs });
            if code != Some(0) {
                run.failed = Some(code.unwrap_or(-1));
                break;
            }
        }

        // GitHub evaluates the outputs even when a step failed.
        for (name, spec) in action["outputs"].as_object().expect("outputs") {
            let v = ctx.eval(spec["value"].as_str().expect("output value"));
            run.outputs.insert(name.clone(), v);
        }
        run
    }
}

fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        other => panic!("no runner arch for {other}"),
    }
}

/// `name=value` lines and `name<<DELIM` … `DELIM` blocks.
fn parse_output_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        } else {
            panic!("malformed line in a GitHub file command: {line:?}");
        }
    }
    out
}

/// The expression contexts the action may use.
struct Ctx {
    inputs: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ctx {
    /// Replaces each `${{ expr }}` in `s`. Only plain context lookups are
    /// known; anything else fails the test, so the action stays within what
    /// this stand-in evaluates exactly as GitHub does.
    fn eval(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unterminated ${{") + start;
            let expr = rest[start + 3..end].trim();
            out.push_str(&self.lookup(expr));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    fn lookup(&self, expr: &str) -> String {
        let parts: Vec<&str> = expr.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self
                .inputs
                .get(*name)
                .cloned()
                .unwrap_or_else(|| panic!("unknown input {name}")),
            ["steps", id, "outputs", name] => self
                .steps
                .get(*id)
                .and_then(|o| o.get(*name))
                .cloned()
                .unwrap_or_default(),
            // `uses: ./` has no ref or repository.
            ["github", "action_ref"] | ["github", "action_repository"] => String::new(),
            _ => panic!("the stand-in runner does not evaluate ${{{{ {expr} }}}}"),
        }
    }
}

/// Asserts that no step printed `secret` (other than inside the
/// `::add-mask::` command itself, which the runner swallows), and that the
/// step that got it masked it before printing anything else.
#[track_caller]
fn assert_secret_handled(run: &ActionRun, secret: &str, masking_step: &str) {
    assert!(
        run.masks.iter().any(|m| m == secret),
        "the key was never masked\n{}",
        run.log()
    );
    for s in &run.steps {
        let visible: String = s
            .ran
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !visible.contains(secret),
            "step {} printed the key\n{}",
            s.id,
            run.log()
        );
        assert!(
            !s.ran.stderr.contains(secret),
            "step {} printed the key on stderr\n{}",
            s.id,
            run.log()
        );
    }
    let step = run.step(masking_step).expect("masking step ran");
    let first = step.ran.stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("::add-mask::"),
        "the mask must come first, got {first:?}\n{}",
        run.log()
    );
    assert!(!run.summary.contains(secret), "the summary shows the key");
}

fn release_setup(tamper: bool) -> (tempfile::TempDir, FileServer) {
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), tamper);
    let server = FileServer::serve(site.path());
    (site, server)
}

#[test]
fn action_yml_keeps_its_rules() {
    let action = util::read_yaml(&util::repo().join("action.yml"));
    let inputs = action["inputs"].as_object().expect("inputs");
    for name in [
        "version",
        "api-key",
        "endpoint",
        "profile",
        "scenario",
        "command",
        "working-directory",
        "upload",
        "binary",
        "release-url",
    ] {
        assert!(inputs.contains_key(name), "input {name} missing");
        assert_eq!(
            inputs[name]["required"],
            Value::Bool(false),
            "input {name} must be optional"
        );
    }
    assert_eq!(inputs["upload"]["default"], "true");
    assert_eq!(inputs["working-directory"]["default"], ".");
    let outputs = action["outputs"].as_object().expect("outputs");
    for name in ["run-batch-id", "total", "failed"] {
        assert_eq!(
            outputs[name]["value"].as_str(),
            Some(format!("${{{{ steps.run.outputs.{name} }}}}").as_str()),
            "output {name} comes from the CLI's own $GITHUB_OUTPUT in step `run`"
        );
    }
    let text = std::fs::read_to_string(util::repo().join("action.yml")).expect("read");
    assert!(
        text.contains(&format!("FLUXLOOP_ACTION_VERSION: \"{}\"", util::VERSION)),
        "action.yml's fallback version must be the crate version {}",
        util::VERSION
    );
    let steps = action["runs"]["steps"].as_array().expect("steps");
    for step in steps {
        let run = step["run"].as_str().unwrap_or("");
        assert!(
            !run.contains("${{"),
            "no expression may be interpolated into a run: script:\n{run}"
        );
        assert!(
            !run.contains("--api-key"),
            "the key must not go on a command line"
        );
    }
    // The key enters only as an env value of the step that runs the CLI.
    let key_refs = text.matches("inputs.api-key").count();
    assert_eq!(
        key_refs, 1,
        "inputs.api-key must be used exactly once (the env: of step run)"
    );
    assert!(text.contains("INPUT_API_KEY: ${{ inputs.api-key }}"));
}

#[test]
fn action_downloads_verifies_caches_and_runs_the_scenario() {
    if util::which("curl").is_none() {
        util::require("curl", "apt-get install -y curl");
        return;
    }
    let (_site, server) = release_setup(false);
    let demo = util::demo_platform();
    let runner = Runner::new();
    util::write_agent_project(&runner.workspace().join("agent"), &demo.scenario, false);

    let run = runner.run_action(&[
        ("api-key", &demo.key),
        ("endpoint", &demo.url),
        ("release-url", &server.url),
        ("working-directory", "agent"),
        ("scenario", &demo.scenario),
    ]);
    assert_eq!(run.failed, None, "the action failed\n{}", run.log());
    assert_secret_handled(&run, &demo.key, "run");

    // Downloaded from the release site, verified, cached, put on PATH.
    let reqs = server.requests();
    let v = util::VERSION;
    assert_eq!(
        reqs,
        vec![
            format!("/v{v}/{}", util::ASSET),
            format!("/v{v}/SHA256SUMS")
        ]
    );
    let cached = runner
        .tool_cache()
        .join(format!("fluxloop/{v}/{}/fluxloop", runner_arch()));
    assert!(cached.is_file(), "no binary in the tool cache");
    assert!(runner
        .tool_cache()
        .join(format!("fluxloop/{v}/{}.complete", runner_arch()))
        .is_file());
    assert_eq!(run.outputs["fluxloop-path"], cached.display().to_string());
    let install = run.step("install").expect("install step");
    assert!(
        install
            .ran
            .stdout
            .contains(&format!("fluxloop {v} (x86_64-unknown-linux-musl)")),
        "{}",
        run.log()
    );
    assert!(install.ran.stdout.contains("sha256"), "{}", run.log());
    assert_eq!(install.outputs["path"], cached.display().to_string());

    // The CLI's outputs, step summary and upload.
    let batches = demo.platform.batch_ids().expect("batch ids");
    assert_eq!(batches.len(), 1, "one uploaded batch\n{}", run.log());
    assert_eq!(run.outputs["run-batch-id"], batches[0], "{}", run.log());
    let total: usize = run.outputs["total"]
        .parse()
        .unwrap_or_else(|_| panic!("total: {:?}", run.outputs));
    assert!(total > 0);
    assert_eq!(demo.platform.run_count(&batches[0]).expect("count"), total);
    assert_eq!(run.outputs["failed"], "0");
    assert!(
        !run.summary.trim().is_empty(),
        "no step summary\n{}",
        run.log()
    );
    let results = util::result_dirs(&runner.workspace().join("agent"));
    assert_eq!(results.len(), 1);
    for f in [
        "trace_summary.jsonl",
        "summary.json",
        "errors.json",
        "junit.xml",
    ] {
        assert!(
            results[0].join(f).is_file(),
            "{f} missing in {}",
            results[0].display()
        );
    }

    // A second job on the same runner takes the binary from the tool cache.
    let again = runner.run_action(&[
        ("api-key", &demo.key),
        ("endpoint", &demo.url),
        ("release-url", &server.url),
        ("command", "auth status"),
    ]);
    assert_eq!(again.failed, None, "{}", again.log());
    assert_eq!(
        server.requests().len(),
        2,
        "the cached binary must not be downloaded again"
    );
    assert!(again
        .step("install")
        .expect("install")
        .ran
        .stdout
        .contains("tool cache"));
    assert!(
        again.step("run").expect("run").ran.stdout.contains("valid"),
        "{}",
        again.log()
    );
    assert_secret_handled(&again, &demo.key, "run");
}

#[test]
fn action_refuses_a_tampered_binary() {
    if util::which("curl").is_none() {
        util::require("curl", "apt-get install -y curl");
        return;
    }
    let (_site, server) = release_setup(true);
    let demo = util::demo_platform();
    let runner = Runner::new();
    util::write_agent_project(&runner.workspace(), &demo.scenario, false);
    let version = format!("v{}", util::VERSION);

    let run = runner.run_action(&[
        ("api-key", &demo.key),
        ("endpoint", &demo.url),
        ("release-url", &server.url),
        ("version", &version),
    ]);
    assert_eq!(run.failed, Some(1), "{}", run.log());
    assert_eq!(
        run.steps.len(),
        1,
        "nothing may run after a failed verification\n{}",
        run.log()
    );
    let install = &run.steps[0];
    assert!(
        install
            .ran
            .stdout
            .contains("::error title=fluxloop install::checksum mismatch"),
        "{}",
        run.log()
    );
    assert!(install.outputs.is_empty(), "{:?}", install.outputs);
    let cache = runner.tool_cache().join("fluxloop");
    let cached_files: Vec<_> = walk(&cache);
    assert!(
        cached_files.is_empty(),
        "a refused binary was cached: {cached_files:?}"
    );
    assert!(
        demo.platform.requests().is_empty(),
        "the tampered binary must never run"
    );
    assert!(walk(&runner.root.path().join("temp"))
        .iter()
        .all(|p| !p.ends_with(util::ASSET)));
}

#[test]
fn action_fails_the_job_with_the_cli_exit_code_and_still_uploads() {
    if util::which("curl").is_none() {
        util::require("curl", "apt-get install -y curl");
        return;
    }
    let (_site, server) = release_setup(false);
    let demo = util::demo_platform();
    let runner = Runner::new();
    util::write_agent_project(&runner.workspace(), &demo.scenario, true);

    let run = runner.run_action(&[
        ("api-key", &demo.key),
        ("endpoint", &demo.url),
        ("release-url", &server.url),
    ]);
    assert_eq!(run.failed, Some(10), "failed runs exit 10\n{}", run.log());
    assert_secret_handled(&run, &demo.key, "run");
    let batches = demo.platform.batch_ids().expect("batches");
    assert_eq!(
        batches.len(),
        1,
        "failed runs are uploaded too\n{}",
        run.log()
    );
    assert_eq!(run.outputs["run-batch-id"], batches[0]);
    assert_eq!(
        run.outputs["failed"], run.outputs["total"],
        "{:?}",
        run.outputs
    );
    assert!(run.outputs["total"].parse::<usize>().expect("total") > 0);
    let stdout = &run.step("run").expect("run").ran.stdout;
    assert!(
        stdout.contains("::error"),
        "failed runs become annotations\n{}",
        run.log()
    );
    assert!(!run.summary.trim().is_empty());
}

#[test]
fn action_uses_a_given_binary_and_a_key_from_the_job_env() {
    let demo = util::demo_platform();
    let mut runner = Runner::new();
    util::write_agent_project(&runner.workspace(), &demo.scenario, false);
    // A local build, wrapped to record the argv it is given.
    let bin = runner.root.path().join("build/fluxloop");
    std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
    let argv_log = runner.root.path().join("argv.log");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{}'\nexec '{}' \"$@\"\n",
            argv_log.display(),
            env!("CARGO_BIN_EXE_fluxloop")
        ),
    )
    .expect("write wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    runner
        .job_env
        .insert("FLUXLOOP_API_KEY".into(), demo.key.clone());
    runner
        .job_env
        .insert("FLUXLOOP_API_ENDPOINT".into(), demo.url.clone());
    let run = runner.run_action(&[
        ("binary", bin.to_str().expect("utf-8")),
        ("upload", "false"),
    ]);
    assert_eq!(run.failed, None, "{}", run.log());
    assert_secret_handled(&run, &demo.key, "run");
    let argv = std::fs::read_to_string(&argv_log).expect("argv log");
    assert!(
        !argv.contains(&demo.key),
        "the key was on a command line:\n{argv}"
    );
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(
        lines,
        ["--version", "sync pull --yes", "test --skip-upload --yes"]
    );
    assert!(
        demo.platform.batch_ids().expect("batches").is_empty(),
        "upload: false must not upload"
    );
    assert_eq!(run.outputs["run-batch-id"], "");
    assert_eq!(run.outputs["fluxloop-path"], bin.display().to_string());
    assert!(
        std::fs::read_dir(runner.tool_cache())
            .expect("read")
            .next()
            .is_none(),
        "nothing downloaded"
    );
}

#[test]
fn action_rejects_a_missing_binary_and_an_unsupported_runner() {
    let runner = Runner::new();
    let run = runner.run_action(&[("binary", "/nonexistent/fluxloop")]);
    assert_eq!(run.failed, Some(1), "{}", run.log());
    assert!(
        run.steps[0]
            .ran
            .stdout
            .contains("is not an executable file"),
        "{}",
        run.log()
    );

    let run = runner.run_action(&[("binary", "fluxloop-no-such-command")]);
    assert_eq!(run.failed, Some(1), "{}", run.log());

    let mut mac = Runner::new();
    mac.job_env.insert("RUNNER_OS".into(), "macOS".into());
    let run = mac.run_action(&[("release-url", "http://127.0.0.1:9/unused")]);
    assert_eq!(run.failed, Some(1), "{}", run.log());
    assert!(
        run.steps[0]
            .ran
            .stdout
            .contains("no fluxloop release binary for macOS/"),
        "{}",
        run.log()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn action_installs_latest_from_the_latest_download_url_without_caching() {
    if util::require("curl", "apt-get install -y curl").is_none() {
        return;
    }
    let site = tempfile::tempdir().expect("tempdir");
    let dir = util::release_site(site.path(), false);
    let latest = site.path().join("latest");
    std::fs::create_dir_all(&latest).expect("mkdir");
    std::fs::rename(&dir, latest.join("download")).expect("move");
    let server = FileServer::serve(site.path());
    let runner = Runner::new();
    let base = format!("{}/download", server.url);
    let run = runner.run_action(&[
        ("version", "latest"),
        ("release-url", &base),
        ("command", "--version"),
    ]);
    assert_eq!(run.failed, None, "{}", run.log());
    assert_eq!(
        server.requests(),
        [
            format!("/latest/download/{}", util::ASSET),
            "/latest/download/SHA256SUMS".to_string()
        ]
    );
    let out = &run.step("run").expect("run").ran.stdout;
    assert!(
        out.contains(&format!("fluxloop {}", util::VERSION)),
        "{}",
        run.log()
    );
    assert!(
        walk(&runner.tool_cache()).is_empty(),
        "`latest` is not cached under a version"
    );
}
