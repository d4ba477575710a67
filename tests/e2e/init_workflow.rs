//! The workflow `fluxloop init` writes, for tests in any binary: this file
//! uses only std, so the channels tests can take it with
//! `#[path = "../e2e/init_workflow.rs"] mod init_workflow;` and run the
//! workflow under act.

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
