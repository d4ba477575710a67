//! `ci-templates/gitlab/fluxloop.gitlab-ci.yml` run by `gitlab-ci-local`
//! (shell executor) in a temporary git repository whose `.gitlab-ci.yml` is
//! the example from `ci-templates/gitlab/README.md`, including the template;
//! the release download comes from a local file server holding the real
//! release build, the platform is a real `fluxloop-platform`, and the key
//! comes from a project-variables file (GitLab's masked CI/CD variables).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, FileServer, Ran};

const INSTALL: &str = "npm install -g gitlab-ci-local@4.56.2 && apt-get install -y rsync git";

/// gitlab-ci-local and the tools its shell executor needs.
#[track_caller]
pub fn tools() -> PathBuf {
    let glc = util::require("gitlab-ci-local", INSTALL);
    util::require("rsync", INSTALL);
    util::require("git", INSTALL);
    util::require("curl", "apt-get install -y curl");
    glc
}

/// The README's example `.gitlab-ci.yml`, with its `include:` pointed at the
/// local copy of the template and `image:` dropped (the shell executor runs
/// jobs on this machine; the template only needs sh, curl, sha256sum).
fn readme_example() -> Value {
    let readme = std::fs::read_to_string(util::repo().join("ci-templates/gitlab/README.md"))
        .expect("README");
    let start = readme
        .find("```yaml\ninclude:")
        .expect("README has a ```yaml block starting with include:")
        + 8;
    let len = readme[start..].find("```").expect("closing fence");
    let mut ci: Value =
        serde_saphyr::from_str(&readme[start..start + len]).expect("README example parses");
    let include = ci["include"][0]["remote"]
        .as_str()
        .expect("include: - remote:")
        .to_string();
    assert!(
        include.ends_with(&format!(
            "/v{}/ci-templates/gitlab/fluxloop.gitlab-ci.yml",
            util::VERSION
        )),
        "the README includes the current release's template: {include}"
    );
    ci["include"] = serde_json::json!([{ "local": "ci/fluxloop.gitlab-ci.yml" }]);
    let job = ci["fluxloop"].as_object_mut().expect("job fluxloop");
    assert_eq!(job["extends"], ".fluxloop");
    job.remove("image");
    job.remove("rules");
    ci
}

pub struct Pipeline {
    pub repo: tempfile::TempDir,
    pub ran: Ran,
}

impl Pipeline {
    pub fn artifacts(&self) -> PathBuf {
        self.repo.path().join(".gitlab-ci-local/artifacts/fluxloop")
    }

    pub fn log(&self) -> String {
        self.ran.all()
    }
}

/// Runs job `fluxloop` of the README example in a fresh repository.
fn run_pipeline(glc: &Path, demo: &util::Demo, release_url: &str, failing: bool) -> Pipeline {
    let mut example = readme_example();
    // What a user of a mirror sets in their job (job variables override the
    // template's through `extends:`).
    let vars = &mut example["fluxloop"]["variables"];
    vars["FLUXLOOP_SCENARIO"] = Value::String(demo.scenario.clone());
    vars["FLUXLOOP_RELEASE_URL"] = Value::String(release_url.to_string());
    vars["FLUXLOOP_INSTALL"] = Value::String("download".into());
    // JSON is YAML.
    let ci = serde_json::to_string_pretty(&example).expect("json");
    let repo = repository(&ci, demo, failing);
    let ran = gitlab_ci_local(glc, repo.path(), "fluxloop", demo, &[], false);
    Pipeline { repo, ran }
}

/// A fresh git repository holding the agent project, the template as
/// `ci/fluxloop.gitlab-ci.yml` and `ci` as its `.gitlab-ci.yml`.
pub fn repository(ci: &str, demo: &util::Demo, failing: bool) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = repo.path();
    util::write_agent_project(dir, &demo.scenario, failing);
    std::fs::create_dir_all(dir.join("ci")).expect("mkdir ci");
    std::fs::copy(
        util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml"),
        dir.join("ci/fluxloop.gitlab-ci.yml"),
    )
    .expect("copy template");
    std::fs::write(dir.join(".gitlab-ci.yml"), ci).expect("write .gitlab-ci.yml");
    commit(dir);
    repo
}

/// Commits everything: gitlab-ci-local copies tracked files only.
pub fn commit(dir: &Path) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "agent"],
    ] {
        let mut c = Command::new("git");
        c.args([
            "-c",
            "user.email=ci@example.com",
            "-c",
            "user.name=ci",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir);
        let r = util::run_bounded(c, Duration::from_secs(30));
        assert!(r.ok(), "git {args:?}: {}", r.all());
    }
}

/// Runs `job` with gitlab-ci-local: shell executor, or podman (host network,
/// so the job reaches the platform on 127.0.0.1). The key, endpoint and
/// `vars` are CI/CD variables, kept outside the repository like GitLab's: the
/// gitlab-ci-local home file (`global:` applies to every project).
pub fn gitlab_ci_local(
    glc: &Path,
    dir: &Path,
    job: &str,
    demo: &util::Demo,
    vars: &[(&str, &str)],
    podman: bool,
) -> Ran {
    let mut all = vec![("FLUXLOOP_API_KEY", demo.key.as_str())];
    all.extend_from_slice(vars);
    gitlab_ci_local_without_key(glc, dir, job, demo, &all, podman, None)
}

/// [`gitlab_ci_local`] with no `FLUXLOOP_API_KEY` among the variables: a
/// keyless job.
pub fn gitlab_ci_local_without_key(
    glc: &Path,
    dir: &Path,
    job: &str,
    demo: &util::Demo,
    vars: &[(&str, &str)],
    podman: bool,
    bin_dir: Option<&Path>,
) -> Ran {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".gitlab-ci-local")).expect("mkdir");
    // The public key of this test process's release build (what a mirror
    // that re-signs sets as a CI/CD variable).
    let mut file = format!(
        "global:\n  FLUXLOOP_API_ENDPOINT: {}\n  FLUXLOOP_MINISIGN_PUBLIC_KEY: {}\n",
        demo.url,
        util::signing_key().public
    );
    for (k, v) in vars {
        file.push_str(&format!("  {k}: {v}\n"));
    }
    std::fs::write(home.path().join(".gitlab-ci-local/variables.yml"), file)
        .expect("write variables");
    let mut cmd = Command::new(glc);
    if podman {
        crate::podman::store_env(&mut cmd);
        cmd.args(["--container-executable", "podman", "--network", "host"]);
    } else {
        cmd.arg("--shell-isolation");
    }
    cmd.arg(job)
        .arg("--home")
        .arg(home.path())
        .arg("--color=false")
        .current_dir(dir);
    if let Some(bin) = bin_dir {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", bin.display()));
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("FLUXLOOP_") || k.starts_with("GITHUB_") || k.starts_with("CI_") {
            cmd.env_remove(k);
        }
    }
    util::run_bounded(cmd, Duration::from_secs(600))
}

pub fn junit_artifacts(p: &Pipeline) -> Vec<PathBuf> {
    util::result_dirs(&p.artifacts())
        .into_iter()
        .map(|d| d.join("junit.xml"))
        .filter(|f| f.is_file())
        .collect()
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_template_passes_uploads_and_reports_junit() {
    let glc = tools();
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), false);
    let server = FileServer::serve(site.path());
    let demo = util::demo_platform();

    let p = run_pipeline(&glc, &demo, &server.url, false);
    assert!(p.ran.ok(), "the job failed\n{}", p.log());
    assert!(
        p.ran.stdout.contains("PASS") && p.ran.stdout.contains("fluxloop"),
        "{}",
        p.log()
    );
    assert!(
        p.ran.stdout.contains("sha256") && p.ran.stdout.contains("OK"),
        "{}",
        p.log()
    );
    assert!(
        !p.ran.stdout.contains(&demo.key) && !p.ran.stderr.contains(&demo.key),
        "the key was printed\n{}",
        p.log()
    );
    assert_eq!(server.requests().len(), 3, "{:?}", server.requests());

    let batches = demo.platform.batch_ids().expect("batches");
    assert_eq!(batches.len(), 1, "one uploaded batch\n{}", p.log());
    let junit = junit_artifacts(&p);
    assert_eq!(
        junit.len(),
        1,
        "the JUnit report is an artifact\n{}",
        p.log()
    );
    let xml = std::fs::read_to_string(&junit[0]).expect("junit");
    assert!(xml.contains("<testsuite"), "{xml}");
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_template_fails_the_job_when_runs_fail_and_still_uploads() {
    let glc = tools();
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), false);
    let server = FileServer::serve(site.path());
    let demo = util::demo_platform();

    let p = run_pipeline(&glc, &demo, &server.url, true);
    assert!(
        !p.ran.ok(),
        "a failing agent must fail the job\n{}",
        p.log()
    );
    assert!(p.ran.stdout.contains("FAIL"), "{}", p.log());
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "failed runs are uploaded\n{}",
        p.log()
    );
    let junit = junit_artifacts(&p);
    assert_eq!(
        junit.len(),
        1,
        "artifacts are kept when the job fails (when: always)\n{}",
        p.log()
    );
    assert!(std::fs::read_to_string(&junit[0])
        .expect("junit")
        .contains("<failure"));
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_template_refuses_a_tampered_binary() {
    let glc = tools();
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), true);
    let server = FileServer::serve(site.path());
    let demo = util::demo_platform();

    let p = run_pipeline(&glc, &demo, &server.url, false);
    assert!(!p.ran.ok(), "{}", p.log());
    assert!(p.ran.stdout.contains("checksum mismatch"), "{}", p.log());
    assert!(
        demo.platform.requests().is_empty(),
        "the tampered binary must never run\n{}",
        p.log()
    );
}
