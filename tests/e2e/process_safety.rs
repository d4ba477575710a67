//! Issue 13, runner and process: the exit code survives a closed stdout,
//! and signals end the pull and upload phases at once with the resume
//! command.

use std::process::Stdio;

use crate::fixtures::setup;

#[test]
fn regression_13_a_closed_stdout_keeps_the_failed_runs_exit_code() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    for json in [false, true] {
        // A pipe whose reader is already gone: `fluxloop test | head` once
        // head has exited.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut args = vec!["test", "--skip-pull", "--skip-upload"];
        if json {
            args.push("--json");
        }
        let out = fx
            .cmd(&args)
            .arg("--")
            .arg("echo")
            .arg(r#"{"success":false,"error":"nope"}"#)
            .command()
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(10), "--json {json}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The `[profile.NAME]` sections of Cargo.toml that set `panic = "abort"`.
fn aborting_profiles(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if line.replace(' ', "") == "panic=\"abort\"" {
            found.push(section.clone());
        }
    }
    found
}

#[test]
fn regression_13_only_the_shipped_binary_aborts_on_panic() {
    // Release builds of the platform (bench, demo) and the runner must
    // unwind so their catch_unwind and join-a-panicked-thread paths live.
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    assert_eq!(aborting_profiles(&manifest), vec!["profile.dist"]);
    let script = std::fs::read_to_string(format!("{root}/scripts/release-build")).unwrap();
    assert!(
        script.contains("build --profile dist --locked"),
        "release-build must build the dist profile"
    );
}
