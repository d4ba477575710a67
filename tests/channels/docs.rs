//! The documentation's CI snippets, extracted from the Markdown as written and
//! run by the consumer's own runner: GitHub workflows and step lists under
//! `act` (and linted by actionlint). A snippet nobody runs rots: docs/ci.md §2
//! was invalid YAML for as long as no test read it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::act::{self, Act};
use crate::util::{self, FileServer, Ran};

/// A fenced code block of a Markdown file.
pub struct Block {
    pub file: PathBuf,
    pub line: usize,
    pub lang: String,
    pub text: String,
}

impl Block {
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Every fenced block of `rel` (a path under the repository).
pub fn blocks(rel: &str) -> Vec<Block> {
    let file = util::repo().join(rel);
    let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in src.lines().enumerate() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    file: file.clone(),
                    line: i + 1,
                    lang: lang.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(b), Some(_)) => out.push(b),
            (Some(mut b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
                open = Some(b);
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{rel}: unclosed code block");
    out
}

/// Where the user-facing snippets live.
pub const DOCS: [&str; 3] = ["README.md", "docs/ci.md", "ci-templates/gitlab/README.md"];

/// What a YAML snippet is for, by the keys only that consumer reads.
#[derive(Debug, PartialEq)]
pub enum Yaml {
    GithubWorkflow,
    GithubSteps,
    Gitlab,
    FluxloopConfig,
}

pub fn classify(b: &Block) -> Yaml {
    let t = &b.text;
    let first = t
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    if t.contains("\njobs:") && t.contains("runs-on:") {
        Yaml::GithubWorkflow
    } else if first.starts_with("- ") && t.contains("run:") {
        Yaml::GithubSteps
    } else if t.contains("script:") || t.contains("include:") || t.contains("extends:") {
        Yaml::Gitlab
    } else if t.contains("runner:") {
        Yaml::FluxloopConfig
    } else {
        panic!("{}: a YAML snippet no test knows how to run", b.at())
    }
}

/// A workflow that signs in with the job's OIDC identity instead of a key.
pub fn is_keyless(b: &Block) -> bool {
    b.text.contains("id-token: write")
}

pub fn yaml_blocks(kind: Yaml) -> Vec<Block> {
    DOCS.iter()
        .flat_map(|f| blocks(f))
        .filter(|b| b.lang == "yaml" && classify(b) == kind)
        .collect()
}

/// A step list wrapped into the smallest workflow that runs it, after a step
/// that puts the release build on PATH (the snippets say "fluxloop on PATH").
fn wrap_steps(steps: &str, bin_dir: &Path) -> String {
    let mut wf = format!(
        "name: snippet\non: push\njobs:\n  agent:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - uses: actions/checkout@v5\n      - run: echo '{}' >>\"$GITHUB_PATH\"\n",
        bin_dir.display()
    );
    for l in steps.lines() {
        wf.push_str("      ");
        wf.push_str(l);
        wf.push('\n');
    }
    wf
}

/// A consumer repository with the demo platform's key as a secret and the
/// platform, release mirror and agent wired in through the runner's env.
fn consumer(demo: &util::Demo, server: &FileServer) -> Act {
    let mut act = Act::new();
    util::write_agent_project(&act.repo(), &demo.scenario, false);
    act::commit(&act);
    act.secret("FLUXLOOP_API_KEY", &demo.key)
        .env("FLUXLOOP_API_ENDPOINT", &demo.url)
        .env("FLUXLOOP_RELEASE_URL", &server.url);
    act
}

#[track_caller]
fn assert_uploaded(run: &Ran, demo: &util::Demo, what: &str) {
    assert!(
        run.code == Some(0) && run.stdout.contains("🏁  Job succeeded"),
        "{what}\n{}",
        run.all()
    );
    assert!(!run.stdout.contains(&demo.key) && !run.stderr.contains(&demo.key));
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "{what}"
    );
}

#[test]
#[ignore = "needs act"]
fn docs_github_workflows_run_under_act_as_written() {
    // Keyless workflows get no key: tests/channels/keyless.rs runs them.
    let workflows: Vec<Block> = yaml_blocks(Yaml::GithubWorkflow)
        .into_iter()
        .filter(|b| !is_keyless(b))
        .collect();
    assert!(!workflows.is_empty());
    for b in workflows {
        let site = tempfile::tempdir().expect("tempdir");
        util::release_site(site.path(), false);
        let server = FileServer::serve(site.path());
        let demo = util::demo_platform();
        let act = consumer(&demo, &server);
        let run = act.run(&b.text);
        assert_uploaded(&run, &demo, &b.at());
        let batch = &demo.platform.batch_ids().expect("batches")[0];
        let total = demo.platform.run_count(batch).expect("count");
        // A substring: act prefixes each line of a step's output.
        let want = format!("| batch {batch}: 0 of {total} runs failed");
        assert!(
            run.stdout.contains(&want),
            "{}: {want}\n{}",
            b.at(),
            run.all()
        );
        assert_eq!(
            server.requests(),
            [
                format!("/v{}/{}", util::VERSION, util::ASSET),
                format!("/v{}/SHA256SUMS", util::VERSION),
                format!("/v{}/SHA256SUMS.minisig", util::VERSION)
            ]
        );
    }
}

#[test]
#[ignore = "needs act"]
fn docs_github_step_snippets_run_under_act() {
    let snippets = yaml_blocks(Yaml::GithubSteps);
    assert!(snippets.len() >= 2, "README and docs/ci.md each have one");
    let site = tempfile::tempdir().expect("tempdir");
    let bin_dir = site.path().join("bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    std::os::unix::fs::symlink(
        util::release_dist().join(util::ASSET),
        bin_dir.join("fluxloop"),
    )
    .expect("symlink");
    let server = FileServer::serve(site.path());
    for b in snippets {
        let demo = util::demo_platform();
        let act = consumer(&demo, &server);
        let run = act.run(&wrap_steps(&b.text, &bin_dir));
        assert_uploaded(&run, &demo, &b.at());
    }
}

#[test]
#[ignore = "needs actionlint"]
fn docs_and_repository_workflows_pass_actionlint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files: Vec<PathBuf> = std::fs::read_dir(util::repo().join(".github/workflows"))
        .expect("workflows")
        .map(|e| e.expect("entry").path())
        .collect();
    let snippets = yaml_blocks(Yaml::GithubWorkflow)
        .into_iter()
        .map(|b| (b.at(), b.text))
        .chain(
            yaml_blocks(Yaml::GithubSteps)
                .into_iter()
                .map(|b| (b.at(), wrap_steps(&b.text, Path::new("/opt/fluxloop")))),
        );
    for (i, (at, text)) in snippets.enumerate() {
        let f = dir.path().join(format!("snippet-{i}.yml"));
        std::fs::write(&f, format!("# {at}\n{text}")).expect("write");
        files.push(f);
    }
    files.sort();
    util::actionlint(&files);
}

/// Placeholders the reader fills in (`<old-key-id>`) become a word, so the
/// shell's parser sees the command as it will be run.
fn fill_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        match rest[i..].find('>') {
            Some(j)
                if rest[i + 1..i + j]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                out.push_str(&rest[..i]);
                out.push_str("PLACEHOLDER");
                rest = &rest[i + j + 1..];
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
        }
    }
    out + rest
}

/// Every shell snippet parses (`sh -n`, dash: POSIX) and passes shellcheck;
/// running them would need the real platform's accounts or root installs.
#[test]
#[ignore = "needs shellcheck"]
fn docs_shell_snippets_parse_and_pass_shellcheck() {
    let shellcheck = util::require("shellcheck", "apt-get install -y shellcheck");
    let dir = tempfile::tempdir().expect("tempdir");
    let snippets: Vec<Block> = DOCS
        .iter()
        .flat_map(|f| blocks(f))
        .filter(|b| b.lang == "sh")
        .collect();
    assert!(snippets.len() >= 8, "{}", snippets.len());
    for (i, b) in snippets.iter().enumerate() {
        let f = dir.path().join(format!("snippet-{i}.sh"));
        std::fs::write(&f, format!("#!/bin/sh\n{}", fill_placeholders(&b.text))).expect("write");
        let mut parse = Command::new("sh");
        parse.arg("-n").arg(&f);
        let ran = util::run_bounded(parse, Duration::from_secs(30));
        assert!(ran.ok(), "{}: sh -n\n{}\n{}", b.at(), ran.all(), b.text);
        let mut sc = Command::new(&shellcheck);
        sc.args(["--severity=warning", "--shell=sh"]).arg(&f);
        let ran = util::run_bounded(sc, Duration::from_secs(30));
        assert!(
            ran.ok(),
            "{}: shellcheck\n{}\n{}",
            b.at(),
            ran.all(),
            b.text
        );
    }
}

/// GitLab snippets, read by gitlab-ci-local's own parser (`--list`); the ones
/// in ci-templates/gitlab/README.md also run (tests/channels/gitlab_podman.rs).
#[test]
#[ignore = "needs gitlab-ci-local"]
fn docs_gitlab_snippets_parse_with_gitlab_ci_local() {
    let glc = util::require("gitlab-ci-local", "npm install -g gitlab-ci-local@4.56.2");
    let snippets = yaml_blocks(Yaml::Gitlab);
    assert!(snippets.len() >= 5, "{}", snippets.len());
    for b in snippets {
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(repo.path().join("ci")).expect("mkdir");
        std::fs::copy(
            util::repo().join("ci-templates/gitlab/fluxloop.gitlab-ci.yml"),
            repo.path().join("ci/fluxloop.gitlab-ci.yml"),
        )
        .expect("copy template");
        // A snippet without `include:` extends the template's jobs: include it.
        let mut ci = String::new();
        if !b.text.contains("include:") && b.text.contains("extends:") {
            ci.push_str("include:\n  - local: ci/fluxloop.gitlab-ci.yml\n");
        }
        for l in b.text.lines() {
            if l.trim_start()
                .starts_with("- remote: https://raw.githubusercontent.com/fluxloop/")
            {
                ci.push_str("  - local: ci/fluxloop.gitlab-ci.yml\n");
            } else if !l.trim_start().starts_with("integrity:") {
                ci.push_str(l);
                ci.push('\n');
            }
        }
        std::fs::write(repo.path().join(".gitlab-ci.yml"), &ci).expect("write");
        crate::gitlab::commit(repo.path());
        let mut c = Command::new(&glc);
        c.args(["--list", "--color=false"]).current_dir(repo.path());
        let ran = util::run_bounded(c, Duration::from_secs(120));
        assert!(ran.ok(), "{}\n{}\n{ci}", b.at(), ran.all());
    }
}

/// The fluxloop.yaml reference in README.md, read by fluxloop itself.
#[test]
fn docs_fluxloop_yaml_is_read_by_fluxloop() {
    let configs = yaml_blocks(Yaml::FluxloopConfig);
    assert!(!configs.is_empty());
    for b in configs {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("fluxloop.yaml"), &b.text).expect("write");
        let mut c = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
        c.args(["config", "list"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("FLUXLOOP_HOME", dir.path().join("home"));
        let ran = util::run_bounded(c, Duration::from_secs(30));
        assert!(ran.ok(), "{}\n{}", b.at(), ran.all());
    }
}

/// JSON examples (the credentials file) are valid JSON.
#[test]
fn docs_json_snippets_parse() {
    let snippets: Vec<Block> = DOCS
        .iter()
        .flat_map(|f| blocks(f))
        .filter(|b| b.lang == "json")
        .collect();
    assert!(!snippets.is_empty());
    for b in snippets {
        // One document, or JSON Lines.
        let whole = serde_json::from_str::<serde_json::Value>(&b.text);
        let lines = b
            .text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .try_for_each(|l| serde_json::from_str::<serde_json::Value>(l).map(drop));
        assert!(
            whole.is_ok() || lines.is_ok(),
            "{}: {whole:?}\n{}",
            b.at(),
            b.text
        );
    }
}
