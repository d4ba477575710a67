//! Every CI file against the schema its system uses (check-jsonschema's
//! built-in GitHub and GitLab schemas, which ship inside the package: no
//! network), the shell inside them through shellcheck, and the version each
//! template pins against the crate's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util;

const CHECK_JSONSCHEMA: &str = "pip install check-jsonschema==0.39.0";
const SHELLCHECK: &str = "apt-get install -y shellcheck";

fn check(schema: &str, files: &[PathBuf]) {
    let tool = util::require("check-jsonschema", CHECK_JSONSCHEMA);
    let mut c = Command::new(tool);
    c.args(["--builtin-schema", schema]).args(files);
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(
        ran.ok(),
        "check-jsonschema --builtin-schema {schema} {files:?}\n{}",
        ran.all()
    );
}

fn workflows() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(util::repo().join(".github/workflows"))
        .expect(".github/workflows")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs check-jsonschema"]
fn action_yml_matches_the_github_actions_schema() {
    check("vendor.github-actions", &[util::repo().join("action.yml")]);
}

#[test]
#[ignore = "needs check-jsonschema"]
fn workflows_match_the_github_workflows_schema() {
    let files = workflows();
    let names: Vec<_> = files.iter().filter_map(|p| p.file_name()).collect();
    assert!(
        names.iter().any(|n| *n == "ci.yml") && names.iter().any(|n| *n == "release.yml"),
        "{names:?}"
    );
    check("vendor.github-workflows", &files);
}

#[test]
#[ignore = "needs check-jsonschema"]
fn gitlab_template_and_readme_example_match_the_gitlab_ci_schema() {
    let readme = std::fs::read_to_string(util::repo().join("ci-templates/gitlab/README.md"))
        .expect("README");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = vec![util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml")];
    // Every ```yaml block of the README is a .gitlab-ci.yml (or part of one);
    // blocks using GitLab's !reference tag are left to GitLab.
    for (n, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let yaml = &block[..block.find("```").expect("closing fence")];
        if yaml.contains("!reference") {
            continue;
        }
        let f = dir.path().join(format!("example{n}.gitlab-ci.yml"));
        std::fs::write(&f, yaml).expect("write");
        files.push(f);
    }
    assert!(files.len() >= 3, "{files:?}");
    check("vendor.gitlab-ci", &files);
}

/// Writes each script to `dir/<name>` and runs shellcheck on them.
fn shellcheck(dir: &Path, scripts: &[(String, String, &str)]) {
    let tool = util::require("shellcheck", SHELLCHECK);
    for (name, body, shell) in scripts {
        let f = dir.join(name);
        std::fs::write(&f, body).expect("write");
        let mut c = Command::new(&tool);
        c.args(["--severity=warning", "--shell", shell]).arg(&f);
        let ran = util::run_bounded(c, Duration::from_secs(60));
        assert!(ran.ok(), "shellcheck {name}:\n{}\n{body}", ran.all());
    }
}

#[test]
#[ignore = "needs shellcheck"]
fn shell_in_every_channel_passes_shellcheck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scripts = Vec::new();
    let release =
        std::fs::read_to_string(util::repo().join("scripts/release-build")).expect("release-build");
    scripts.push(("release-build".to_string(), release, "bash"));
    let action = util::read_yaml(&util::repo().join("action.yml"));
    for step in action["runs"]["steps"].as_array().expect("steps") {
        let id = step["id"].as_str().expect("id");
        // GitHub runs the file with `bash --noprofile --norc -eo pipefail`.
        scripts.push((
            format!("action-{id}"),
            step["run"].as_str().expect("run").to_string(),
            "bash",
        ));
    }
    let gitlab = util::read_yaml(&util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml"));
    let script: Vec<&str> = gitlab[".fluxloop"]["script"]
        .as_array()
        .expect("script")
        .iter()
        .map(|l| l.as_str().expect("string"))
        .collect();
    // GitLab runs the lines in one POSIX shell (busybox sh in small images).
    scripts.push(("gitlab-script".into(), script.join("\n"), "sh"));
    shellcheck(dir.path(), &scripts);
}

#[test]
fn every_template_pins_the_crate_version() {
    let v = util::VERSION;
    let read = |rel: &str| {
        std::fs::read_to_string(util::repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    assert!(read("action.yml").contains(&format!("FLUXLOOP_ACTION_VERSION: \"{v}\"")));
    let gitlab = util::read_yaml(&util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml"));
    assert_eq!(
        gitlab[".fluxloop-install"]["variables"]["FLUXLOOP_VERSION"],
        v
    );
    assert!(read("ci-templates/gitlab/README.md").contains(&format!("/v{v}/ci-templates/gitlab/")));
    assert!(read("ci-templates/jenkins/Jenkinsfile").contains(&format!("FLUXLOOP_VERSION = '{v}'")));
    let docs = read("docs/ci.md");
    assert!(
        docs.contains(&format!("@v{v}")),
        "docs/ci.md shows `uses: …@v{v}`"
    );
}

/// zizmor's security audits: every finding is fixed or suppressed in place
/// with a written reason (`# zizmor: ignore[...]` next to it).
#[test]
#[ignore = "needs zizmor"]
fn zizmor_finds_nothing_unsuppressed_in_the_action_and_workflows() {
    util::zizmor(&["action.yml".into(), ".github/workflows".into()]);
}
