//! The GitLab template's documented uses, run by gitlab-ci-local as written
//! in `ci-templates/gitlab/README.md`: the include example with its `image:`
//! in a podman container (only the remote include mapped to the local file),
//! the `.fluxloop-image` variant in the fluxloop image built from the
//! Dockerfile, and the `!reference` reuse of the install step. Also the
//! `integrity:` hash the README publishes for the remote include.

use std::process::Command;
use std::time::Duration;

use crate::docs;
use crate::gitlab::{self, Pipeline};
use crate::util::{self, FileServer};

const REMOTE: &str = "  - remote: https://raw.githubusercontent.com/fluxloop/fluxloop-rs/v";

fn readme_yaml() -> Vec<String> {
    docs::blocks("ci-templates/gitlab/README.md")
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .map(|b| b.text)
        .collect()
}

/// The README's include example, its remote include (and that include's
/// `integrity:`) replaced by the same file as a local include.
fn include_example() -> String {
    let blocks = readme_yaml();
    let ex = blocks
        .iter()
        .find(|b| b.starts_with("include:\n"))
        .expect("README has a ```yaml block starting with include:");
    let mut out = String::new();
    let mut lines = ex.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with(REMOTE) {
            assert!(
                l.ends_with("/ci-templates/gitlab/fluxloop.gitlab-ci.yml"),
                "{l}"
            );
            out.push_str("  - local: ci/fluxloop.gitlab-ci.yml\n");
            if lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("integrity:"))
            {
                lines.next();
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    assert!(out.contains("local: ci/"), "no remote include in\n{ex}");
    out
}

/// The include part of the example followed by another README snippet.
fn with_include(snippet_start: &str) -> String {
    let head: String = include_example()
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let snippet = readme_yaml()
        .into_iter()
        .find(|b| b.starts_with(snippet_start))
        .unwrap_or_else(|| panic!("README has no ```yaml block starting with {snippet_start}"));
    format!("{head}\n{snippet}")
}

fn release() -> (tempfile::TempDir, FileServer) {
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), false);
    let server = FileServer::serve(site.path());
    (site, server)
}

#[track_caller]
fn assert_uploaded(p: &Pipeline, demo: &util::Demo, passed: bool) {
    assert_eq!(p.ran.ok(), passed, "{}", p.log());
    assert!(!p.ran.stdout.contains(&demo.key) && !p.ran.stderr.contains(&demo.key));
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "{}",
        p.log()
    );
    assert_eq!(
        gitlab::junit_artifacts(p).len(),
        1,
        "JUnit artifact\n{}",
        p.log()
    );
}

#[test]
#[ignore = "needs gitlab-ci-local and podman"]
fn gitlab_readme_include_example_runs_as_written_in_its_image_under_podman() {
    let glc = gitlab::tools();
    crate::podman::images();
    let (_site, server) = release();
    let demo = util::demo_platform();
    let repo = gitlab::repository(&include_example(), &demo, false);
    // The mirror is a CI/CD variable, which overrides the template's default.
    let ran = gitlab::gitlab_ci_local(
        &glc,
        repo.path(),
        "fluxloop",
        &demo,
        &[("FLUXLOOP_RELEASE_URL", &server.url)],
        true,
    );
    let p = Pipeline { repo, ran };
    // Substring: the job's log lines carry gitlab-ci-local's prefixes.
    assert!(p.ran.stdout.contains("starting python:3.12"), "{}", p.log());
    assert!(
        p.ran.stdout.contains(": signature OK, sha256 "),
        "downloaded and checked\n{}",
        p.log()
    );
    assert_uploaded(&p, &demo, true);
    assert_eq!(server.requests().len(), 3);
}

#[test]
#[ignore = "needs gitlab-ci-local and podman"]
fn gitlab_image_variant_runs_in_the_fluxloop_image_and_fails_on_failed_runs() {
    let glc = gitlab::tools();
    crate::podman::images();
    for failing in [false, true] {
        let demo = util::demo_platform();
        let ci = with_include("fluxloop:\n  extends: .fluxloop-image");
        let repo = gitlab::repository(&ci, &demo, failing);
        let ran = gitlab::gitlab_ci_local(&glc, repo.path(), "fluxloop", &demo, &[], true);
        let p = Pipeline { repo, ran };
        assert!(
            p.ran.stdout.contains("using /usr/local/bin/fluxloop"),
            "no download in the image\n{}",
            p.log()
        );
        assert_uploaded(&p, &demo, !failing);
    }
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_reference_example_reuses_the_install_step() {
    let glc = gitlab::tools();
    let (_site, server) = release();
    let demo = util::demo_platform();
    let ci = with_include("fluxloop-upload:\n");
    let repo = gitlab::repository(&ci, &demo, false);
    // Results to upload, made by the CLI beforehand and committed.
    let mut t = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
    t.args(["test", "--skip-upload", "--yes"])
        .current_dir(repo.path())
        .env("FLUXLOOP_HOME", repo.path().join(".home"))
        .env("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", &demo.url);
    let r = util::run_bounded(t, Duration::from_secs(120));
    assert!(r.ok(), "{}", r.all());
    std::fs::remove_dir_all(repo.path().join(".home")).ok();
    gitlab::commit(repo.path());
    let ran = gitlab::gitlab_ci_local(
        &glc,
        repo.path(),
        "fluxloop-upload",
        &demo,
        &[
            ("FLUXLOOP_RELEASE_URL", &server.url),
            ("FLUXLOOP_INSTALL", "download"),
        ],
        false,
    );
    assert!(ran.ok(), "{}", ran.all());
    assert!(
        ran.stdout.contains(": signature OK, sha256 "),
        "the install ran\n{}",
        ran.all()
    );
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "{}",
        ran.all()
    );
}

#[test]
#[ignore = "needs openssl"]
fn gitlab_readme_publishes_the_templates_integrity_hash() {
    let openssl = util::require("openssl", "apt-get install -y openssl");
    let template = util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml");
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("\"$0\" dgst -sha256 -binary \"$1\" | base64 -w0")
        .arg(openssl)
        .arg(&template);
    let ran = util::run_bounded(c, Duration::from_secs(30));
    assert!(ran.ok(), "{}", ran.all());
    let want = format!("    integrity: sha256-{}", ran.stdout.trim());
    let example = readme_yaml()
        .into_iter()
        .find(|b| b.starts_with("include:\n"))
        .expect("include example");
    assert!(
        example.lines().any(|l| l == want),
        "README's include must carry\n{want}\n(update it whenever the template changes)\n{example}"
    );
}
