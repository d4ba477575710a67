//! The delivery channels of `fluxloop`, each exercised as far as this machine
//! allows: the static release build (and the binary alone in an empty root
//! doing TLS), the GitHub composite action executed step by step by a
//! stand-in runner, the GitLab template run by `gitlab-ci-local`, the Jenkins
//! pipelines' shell steps, the Dockerfile, and schema checks of every CI file.
//!
//! Tools that are not Rust crates (check-jsonschema, gitlab-ci-local, hadolint,
//! groovy, a Docker engine) are looked up on PATH: on a developer machine a
//! missing tool skips its test with a printed reason; under `CI` it fails the
//! test (the Docker engine is the exception: it is never available here).
//! `.ci/run` installs them (see docs/ci.md, "Testing the channels").

mod docker;
mod github_action;
mod gitlab;
mod jenkins;
mod release;
mod schemas;
mod util;
