//! The workflow `fluxloop init` writes, for tests in any binary: this file
//! uses only std, so the channels tests can take it with
//! `#[path = "../e2e/init_workflow.rs"] mod init_workflow;` and run the
//! workflow under act.
//!
//! What ran it under act 0.2.89 by hand, with no network and no container
//! (`-P ubuntu-latest=-self-hosted` runs the steps on this machine; act
//! skips `actions/checkout` for a local repository), against a
//! `fluxloop-platform serve --demo` on 127.0.0.1:
//!
//! ```text
//! # in the repository init_github_repo made, after adding to the step's `with:`
//! #   binary: <path of the fluxloop binary>     (no release download)
//! #   endpoint: http://127.0.0.1:<port>
//! # and one commit (act reads the push event from git):
//! act push -W .github/workflows/fluxloop.yml -P ubuntu-latest=-self-hosted \
//!     --local-repository fluxloop/fluxloop-rs@v<VERSION>=<directory holding action.yml> \
//!     -s FLUXLOOP_API_KEY=<demo key>
//! ```
//!
//! The job pulled, ran and uploaded the demo scenario (10 runs, outputs and
//! step summary set). act 0.2.89 rejects the repository's action.yml as it
//! is ("Line: 27 Column 18: expressions are not allowed here": the
//! `${{ secrets.FLUXLOOP_API_KEY }}` inside the api-key input's
//! description); with that text changed the run above succeeded.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes `dir` a git repository with `.github/workflows/` and an `agent.py`,
/// runs `fluxloop init --yes --scenario SCENARIO` there (with a clean
/// environment) and returns the path of the workflow it wrote.
pub fn init_github_repo(fluxloop: &Path, dir: &Path, scenario: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join(".github/workflows")).unwrap();
    std::fs::write(dir.join("agent.py"), "").unwrap();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(git.success(), "git init");
    let home = dir.join(".init-home");
    let out = Command::new(fluxloop)
        .args(["init", "--yes", "--scenario", scenario])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("FLUXLOOP_HOME", home.join(".fluxloop"))
        .current_dir(dir)
        .output()
        .expect("run fluxloop init");
    assert!(out.status.success(), "fluxloop init: {out:?}");
    let _ = std::fs::remove_dir_all(&home);
    let workflow = dir.join(".github/workflows/fluxloop.yml");
    assert!(workflow.is_file(), "init wrote no workflow");
    workflow
}

/// A tool the test needs. The test that calls this is `#[ignore = "needs
/// NAME"]`, so it runs only when asked (`--include-ignored`, as .ci/run
/// does): then a missing tool is a failure, never a silent pass.
pub fn tool(name: &str, install: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH (install: {install})"))
}
