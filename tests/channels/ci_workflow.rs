//! This repository's own `.github/workflows/ci.yml`, run by act where a job
//! needs nothing from GitHub or the network: `fmt` and `templates`, on a
//! copy of the files git would commit (steps that install tools are skipped under act,
//! `if: !env.ACT`, and the host's tools are used). A misformatted file must
//! fail the `fmt` job, so the job is shown to run for real.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::act::INSTALL;
use crate::util;

/// The files of this checkout git would commit (tracked, and new ones it
/// does not ignore), as they are in the work tree, in a
/// fresh git repository with one commit (act reads the push event from git).
fn tracked_copy(dir: &Path) {
    let repo = util::repo();
    let git = util::require("git", "apt-get install -y git");
    let out = Command::new(&git)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&repo)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files: {out:?}");
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).expect("utf-8 path"));
        let from = repo.join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy tracked file");
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@127.0.0.1",
            "commit",
            "-qm",
            "ci",
        ],
    ] {
        let out = Command::new(&git)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
}

fn run_job(dir: &Path, job: &str) -> util::Ran {
    let act = util::require("act", INSTALL);
    let home = dir.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).expect("mkdir home");
    let mut cmd = Command::new(act);
    cmd.args(["push", "-W", ".github/workflows/ci.yml", "-j", job])
        .args(["-P", "ubuntu-24.04=-self-hosted"])
        .args(["--action-offline-mode", "--no-cache-server"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("LANG", "C.UTF-8");
    // The host's toolchain, without installing one.
    for k in ["RUSTUP_HOME", "CARGO_HOME"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    if std::env::var_os("RUSTUP_HOME").is_none() {
        if let Some(h) = std::env::var_os("HOME") {
            cmd.env("RUSTUP_HOME", Path::new(&h).join(".rustup"));
            cmd.env("CARGO_HOME", Path::new(&h).join(".cargo"));
        }
    }
    util::run_bounded(cmd, Duration::from_secs(300))
}

#[test]
#[ignore = "needs act"]
fn ci_yml_fmt_and_templates_jobs_run_under_act() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("repo");
    tracked_copy(&dir);
    for job in ["fmt", "templates"] {
        let run = run_job(&dir, job);
        assert!(
            run.code == Some(0) && run.stdout.contains("🏁  Job succeeded"),
            "job {job}\n{}",
            run.all()
        );
    }
    // The job really runs rustfmt: a misformatted file fails it.
    std::fs::write(
        dir.join("src/main.rs"),
        "fn   main( ){ fluxloop::run(std::env::args_os().skip(1)); }\n",
    )
    .expect("write");
    let run = run_job(&dir, "fmt");
    assert!(
        run.code != Some(0) && run.stdout.contains("🏁  Job failed"),
        "{}",
        run.all()
    );
}
