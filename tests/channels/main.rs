//! The delivery channels of `fluxloop`, each run by a runner someone else
//! wrote: the static release build (and the binary alone in an empty root
//! doing TLS), the GitHub composite action and the docs' workflows under `act`,
//! the GitLab template under `gitlab-ci-local`, the Jenkinsfiles under a Groovy
//! harness, the Dockerfile under podman/buildah, and lints of every CI file.
//!
//! Every test that needs a tool that is not a Rust crate is
//! `#[ignore = "needs X"]`: a plain `cargo test` counts it as ignored.
//! `.ci/run` (and ci.yml) install the tools and run with `--include-ignored`,
//! and there a missing tool fails its test. See docs/ci.md, "How these
//! channels are tested".

mod act;
mod ci_workflow;
mod docker;
mod docs;
mod github_action;
mod gitlab;
mod gitlab_podman;
mod init_under_act;
mod jenkins;
mod keyless;
mod podman;
mod release;
mod schemas;
mod sharding;
mod supply;
mod util;

/// Under CI the ignored tests must run: otherwise every channel would be
/// "ignored" and the run would still be green.
#[test]
fn ci_runs_the_tests_that_need_tools() {
    assert!(
        !util::is_ci() || util::including_ignored(),
        "CI is set but the ignored tests are not run: pass `-- --include-ignored` (as .ci/run does)"
    );
}
