//! `action.yml` run by `act` from a consumer's workflow (`uses:
//! fluxloop/fluxloop-rs@v<VERSION>`), against a real `fluxloop-platform`,
//! with the real release build served from 127.0.0.1: download, checksum,
//! tool cache, outputs, masking, exit codes, and a tampered binary refused.

use sha2::Digest;

use crate::act::{self, Act};
use crate::util::{self, FileServer, Ran};

fn release(tamper: bool) -> (tempfile::TempDir, FileServer) {
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), tamper);
    let server = FileServer::serve(site.path());
    (site, server)
}

/// The consumer workflow: checkout, then this action `with:` the given
/// inputs, then a step that records the action's outputs.
fn consumer(act: &Act, with: &[(&str, &str)]) -> String {
    let mut wf = format!(
        "name: consumer\non: push\njobs:\n  agent:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - uses: actions/checkout@v5\n      - uses: {}\n        id: fluxloop\n",
        act::action_ref()
    );
    if !with.is_empty() {
        wf.push_str("        with:\n");
        for (k, v) in with {
            wf.push_str(&format!("          {k}: {v}\n"));
        }
    }
    wf + &act::dump_outputs_step(act, "fluxloop")
}

/// act's verdict line for the job.
#[track_caller]
fn assert_job(run: &Ran, succeeded: bool) {
    let (want, code) = if succeeded {
        ("🏁  Job succeeded", Some(0))
    } else {
        ("🏁  Job failed", Some(1))
    };
    assert!(
        run.code == code && run.stdout.contains(want),
        "want {want:?}\n{}",
        run.all()
    );
}

#[track_caller]
fn assert_no_secret(run: &Ran, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the key is in act's log\n{}",
        run.all()
    );
}

fn project(act: &Act, scenario: &str, failing: bool) {
    util::write_agent_project(&act.repo(), scenario, failing);
    act::commit(act);
}

#[test]
#[ignore = "needs act"]
fn action_under_act_downloads_verifies_caches_runs_and_uploads() {
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    let mut act = Act::new();
    project(&act, &demo.scenario, false);
    act.secret("FLUXLOOP_API_KEY", &demo.key);
    let wf = consumer(
        &act,
        &[
            ("api-key", "${{ secrets.FLUXLOOP_API_KEY }}"),
            ("endpoint", &demo.url),
            ("release-url", &server.url),
        ],
    );
    let run = act.run(&wf);
    assert_job(&run, true);
    assert_no_secret(&run, &demo.key);
    let v = util::VERSION;
    assert_eq!(
        server.requests(),
        [
            format!("/v{v}/{}", util::ASSET),
            format!("/v{v}/SHA256SUMS"),
            format!("/v{v}/SHA256SUMS.minisig")
        ]
    );

    let out = act::read_outputs(&act, &run);
    let batches = demo.platform.batch_ids().expect("batch ids");
    assert_eq!(batches.len(), 1, "one uploaded batch\n{}", run.all());
    let total = demo.platform.run_count(&batches[0]).expect("count");
    assert!(total > 0);
    let cached = act.tool_cache().join(format!("fluxloop/{v}/X64/fluxloop"));
    let want = serde_json::json!({
        "run-batch-id": batches[0],
        "run-batch-url": format!("{}/run-batches/{}", demo.url, batches[0]),
        "total": total.to_string(),
        "failed": "0",
        "passed": total.to_string(),
        "flaky": "0",
        "skipped": "0",
        "fluxloop-path": cached.display().to_string(),
    });
    assert_eq!(out, want, "{}", run.all());
    let results = util::result_dirs(&act::workspace(&act));
    assert_eq!(results.len(), 1, "{}", run.all());
    for f in [
        "trace_summary.jsonl",
        "summary.json",
        "errors.json",
        "junit.xml",
    ] {
        assert!(results[0].join(f).is_file(), "{f} missing");
    }

    // The next job on this runner takes the binary from the tool cache.
    let again = act.run(&consumer(
        &act,
        &[
            ("api-key", "${{ secrets.FLUXLOOP_API_KEY }}"),
            ("endpoint", &demo.url),
            ("release-url", &server.url),
            ("command", "auth status"),
        ],
    ));
    assert_job(&again, true);
    assert_no_secret(&again, &demo.key);
    assert_eq!(
        server.requests().len(),
        3,
        "downloaded again\n{}",
        again.all()
    );
    assert!(
        again
            .stdout
            .contains(&format!("fluxloop {v} found in the tool cache")),
        "{}",
        again.all()
    );

    // A cache entry changed behind the action's back (its own checksum file
    // rewritten too) is not trusted: it is checked against the signed
    // SHA256SUMS, fails, and the release is downloaded again.
    let evil = b"#!/bin/sh\necho evil\n";
    std::fs::write(&cached, evil).expect("overwrite cached binary");
    let hash: String = sha2::Sha256::digest(evil)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cached.parent().expect("cache dir");
    std::fs::write(dir.join("SHA256SUMS"), format!("{hash}  {}\n", util::ASSET)).expect("sums");
    std::fs::write(dir.join("fluxloop.sha256"), format!("{hash}\n")).expect("old layout");
    let third = act.run(&consumer(
        &act,
        &[
            ("endpoint", &demo.url),
            ("release-url", &server.url),
            ("command", "--version"),
        ],
    ));
    assert_job(&third, true);
    assert!(!third.stdout.contains("evil"), "{}", third.all());
    assert_eq!(server.requests().len(), 6, "{}", third.all());
}

#[test]
#[ignore = "needs act"]
fn action_under_act_refuses_checksums_signed_by_another_key() {
    let (_site, server) = release(false);
    let act = Act::new();
    act::commit(&act);
    // The right key is in the runner's env; the input names another one,
    // as if the release had been re-signed by someone else.
    // minisign's own project key: a valid key that did not sign this release.
    let other = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let run = act.run(&consumer(
        &act,
        &[
            ("release-url", &server.url),
            ("public-key", other),
            ("command", "--version"),
        ],
    ));
    assert_job(&run, false);
    assert!(
        run.stdout
            .contains("is not signed by the fluxloop release key"),
        "{}",
        run.all()
    );
    assert!(!act.tool_cache().join("fluxloop").exists());
}

#[test]
#[ignore = "needs act"]
fn action_under_act_refuses_a_tampered_binary() {
    let (_site, server) = release(true);
    let demo = util::demo_platform();
    let mut act = Act::new();
    project(&act, &demo.scenario, false);
    act.secret("FLUXLOOP_API_KEY", &demo.key);
    let run = act.run(&consumer(
        &act,
        &[
            ("api-key", "${{ secrets.FLUXLOOP_API_KEY }}"),
            ("endpoint", &demo.url),
            ("release-url", &server.url),
        ],
    ));
    assert_job(&run, false);
    // A substring: act decorates the annotation with its own prefix.
    assert!(
        run.stdout.contains(&format!(
            "checksum mismatch for {}: SHA256SUMS says",
            util::ASSET
        )),
        "{}",
        run.all()
    );
    assert!(demo.platform.batch_ids().expect("batches").is_empty());
    assert!(
        !act.tool_cache().join("fluxloop").exists(),
        "a refused binary was cached"
    );
    assert_eq!(act::read_outputs(&act, &run)["fluxloop-path"], "");
}

#[test]
#[ignore = "needs act"]
fn action_under_act_fails_the_job_with_exit_10_and_still_uploads() {
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    let mut act = Act::new();
    project(&act, &demo.scenario, true);
    act.secret("FLUXLOOP_API_KEY", &demo.key);
    let run = act.run(&consumer(
        &act,
        &[
            ("api-key", "${{ secrets.FLUXLOOP_API_KEY }}"),
            ("endpoint", &demo.url),
            ("release-url", &server.url),
        ],
    ));
    assert_job(&run, false);
    assert_no_secret(&run, &demo.key);
    assert!(act::exit_status(&run, 10), "{}", run.all());
    let batches = demo.platform.batch_ids().expect("batches");
    assert_eq!(batches.len(), 1, "failed runs are uploaded too");
    let out = act::read_outputs(&act, &run);
    assert_eq!(out["run-batch-id"], batches[0].as_str());
    assert_eq!(out["failed"], out["total"], "{out}");
    assert_eq!(out["passed"], "0", "{out}");
}

#[test]
#[ignore = "needs act"]
fn action_under_act_uses_a_given_binary_and_a_key_from_the_runner_env() {
    let demo = util::demo_platform();
    let mut act = Act::new();
    project(&act, &demo.scenario, false);
    // Not a secret to act: only the action's ::add-mask:: can hide it.
    act.env("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", &demo.url);
    let bin = env!("CARGO_BIN_EXE_fluxloop");
    let run = act.run(&consumer(&act, &[("binary", bin), ("upload", "false")]));
    assert_job(&run, true);
    assert_no_secret(&run, &demo.key);
    assert!(
        demo.platform.batch_ids().expect("batches").is_empty(),
        "upload: false uploaded"
    );
    let out = act::read_outputs(&act, &run);
    assert_eq!(out["fluxloop-path"], bin);
    assert_eq!(out["failed"], "0");
    assert!(
        !act.tool_cache().join("fluxloop").exists(),
        "nothing is downloaded"
    );
}

#[test]
#[ignore = "needs act"]
fn action_under_act_rejects_a_missing_binary() {
    let act = Act::new();
    act::commit(&act);
    let run = act.run(&consumer(&act, &[("binary", "/nonexistent/fluxloop")]));
    assert_job(&run, false);
    assert!(
        run.stdout.contains(
            "binary: '/nonexistent/fluxloop' is not an executable file or a command on PATH"
        ),
        "{}",
        run.all()
    );
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
            serde_json::Value::Bool(false),
            "input {name} must be optional"
        );
    }
    assert_eq!(inputs["upload"]["default"], "true");
    assert_eq!(inputs["working-directory"]["default"], ".");
    let outputs = action["outputs"].as_object().expect("outputs");
    for name in [
        "run-batch-id",
        "run-batch-url",
        "total",
        "failed",
        "passed",
        "flaky",
        "skipped",
    ] {
        assert_eq!(
            outputs[name]["value"].as_str(),
            Some(format!("${{{{ steps.run.outputs.{name} }}}}").as_str()),
            "output {name} comes from the CLI's own $GITHUB_OUTPUT in step `run`"
        );
    }
    let text = std::fs::read_to_string(util::repo().join("action.yml")).expect("read");
    // The test report is the job's summary: a log group would fold it away.
    assert!(
        !text.contains("::group::"),
        "action.yml folds output into a group"
    );
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

/// `version: latest` takes the latest-download URL, accepts whichever
/// version the signed SHA256SUMS names, and caches nothing.
#[test]
#[ignore = "needs act"]
fn action_under_act_installs_latest_without_caching() {
    let site = tempfile::tempdir().expect("tempdir");
    let dir = util::release_site(site.path(), false);
    std::fs::create_dir_all(site.path().join("latest")).expect("mkdir");
    std::fs::rename(&dir, site.path().join("latest/download")).expect("move");
    let server = FileServer::serve(site.path());
    let act = Act::new();
    act::commit(&act);
    let base = format!("{}/download", server.url);
    let run = act.run(&consumer(
        &act,
        &[
            ("version", "latest"),
            ("release-url", &base),
            ("command", "--version"),
        ],
    ));
    assert_job(&run, true);
    assert_eq!(
        server.requests()[0],
        format!("/latest/download/{}", util::ASSET)
    );
    assert!(
        run.stdout.contains(&format!(
            "| fluxloop {} (x86_64-unknown-linux-musl)",
            util::VERSION
        )),
        "{}",
        run.all()
    );
    assert!(
        !act.tool_cache().join("fluxloop").exists(),
        "latest is not cached"
    );
}
