//! `fluxloop init`: a `fluxloop.yaml` for the agent it finds, the CI snippet
//! for the repository it is in, and `.gitignore` entries. It never replaces
//! a file without `--force`, and reports every file it wrote or kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::InitArgs;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

/// What `init` did to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    Created,
    Overwrote,
    Appended,
    /// A stage was added inside the file's `stages { }`.
    AddedStage,
    /// Exists and was left alone (no `--force`, or already set up).
    Kept,
    /// Could not be edited safely: the snippet is shown for the user to add.
    Shown,
}

#[derive(Serialize)]
pub(crate) struct FileReport {
    pub(crate) path: String,
    pub(crate) action: Action,
    pub(crate) what: &'static str,
    /// The text to add by hand, for `Shown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) snippet: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct InitReport {
    pub(crate) scenario: String,
    pub(crate) command: Vec<String>,
    /// Where the agent command came from.
    pub(crate) agent: String,
    pub(crate) ci: Option<&'static str>,
    pub(crate) files: Vec<FileReport>,
}

/// What goes ignored: results, and the credentials files a key may be kept in.
const GITIGNORE: &[&str] = &[".fluxloop/results/", ".fluxloop/credentials", "api_key.txt"];

pub(crate) fn run(ctx: &Ctx, args: InitArgs) -> Result<Outcome> {
    let dir = ctx.cwd.clone();
    let (found, agent) = find_agent(&dir);
    let default_scenario = args
        .scenario
        .clone()
        .unwrap_or_else(|| default_scenario(&dir));
    let offered = found.unwrap_or_else(default_command);
    let (scenario, command) = if ctx.globals.yes {
        (default_scenario, offered.clone())
    } else {
        ask(ctx, default_scenario, offered.clone())?
    };
    let agent = if command == offered {
        agent
    } else {
        "given at the prompt".into()
    };
    let root = repository_root(&dir);
    let mut files = vec![write_file(
        &dir.join("fluxloop.yaml"),
        &config_yaml(&scenario, &command),
        args.force,
        "project config",
    )?];
    let ci = ci_snippet(&root, &dir, &scenario, args.force, &mut files)?;
    // Beside fluxloop.yaml: its patterns are relative to the directory of
    // the .gitignore that holds them, which is where .fluxloop/ will be.
    files.push(gitignore(&dir)?);
    let files = files
        .into_iter()
        .map(|mut f| {
            f.path = relative(&dir, Path::new(&f.path));
            f
        })
        .collect();
    Ok(Outcome::ok(InitReport {
        scenario,
        command,
        agent,
        ci,
        files,
    }))
}

/// The agent command, and how it was found.
fn find_agent(dir: &Path) -> (Option<Vec<String>>, String) {
    if dir.join("agent.py").is_file() {
        return (
            Some(vec!["python3".into(), "agent.py".into()]),
            "found agent.py".into(),
        );
    }
    if let Some(name) = std::fs::read_to_string(dir.join("pyproject.toml"))
        .ok()
        .and_then(|t| first_project_script(&t))
    {
        let how = format!("the [project.scripts] entry {name} of pyproject.toml");
        return (Some(vec![name]), how);
    }
    (
        None,
        "no agent.py or pyproject script found: edit runner.command".into(),
    )
}

fn default_command() -> Vec<String> {
    vec!["python3".into(), "agent.py".into()]
}

/// The first key of the `[project.scripts]` table. Only that table's plain
/// `name = "module:function"` lines are read, which is all a script entry
/// is; a full TOML parser would be a dependency for one key.
fn first_project_script(toml: &str) -> Option<String> {
    let mut inside = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[project.scripts]";
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches(['"', '\'']);
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Some(key.to_string());
        }
    }
    None
}

/// The directory's name, as a scenario name.
fn default_scenario(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "my-scenario".into()
    } else {
        name.to_string()
    }
}

/// Asks for the scenario and the agent command, defaults in brackets.
fn ask(ctx: &Ctx, scenario: String, command: Vec<String>) -> Result<(String, Vec<String>)> {
    if !ctx.can_prompt() {
        return Err(Error::NeedsConfirmation {
            question: "init asks for the scenario and the agent command".into(),
        });
    }
    let read = |q: String| {
        ctx.out
            .prompt(&q)
            .map_err(|e| Error::io("read", Path::new("<stdin>"), e))
    };
    let answer = read(format!("Scenario [{scenario}]:"))?;
    let scenario = Some(answer.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or(scenario);
    let answer = read(format!("Agent command [{}]:", command.join(" ")))?;
    let words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
    let command = if words.is_empty() { command } else { words };
    Ok((scenario, command))
}

/// `fluxloop.yaml`; values are written as JSON strings, which YAML reads as is.
pub(crate) fn config_yaml(scenario: &str, command: &[String]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let command: Vec<String> = command.iter().map(|w| quote(w)).collect();
    format!(
        "# fluxloop.yaml, written by `fluxloop init` (README.md lists every key)\n\
         scenario: {}\n\
         runner:\n  type: process\n  command: [{}]\n  working_directory: .\n\
         test:\n  iterations: 1\n  parallel: 4\n  timeout: 30\n  auto_upload: true\n",
        quote(scenario),
        command.join(", ")
    )
}

/// The GitHub Actions workflow `init` writes: the composite action pinned to
/// this release, as docs/ci.md shows it. `working_directory` is where fluxloop.yaml is,
/// relative to the repository root (`None`: the root).
pub(crate) fn github_workflow(scenario: &str, working_directory: Option<&str>) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut with = format!(
        "          api-key: ${{{{ secrets.FLUXLOOP_API_KEY }}}}\n          scenario: {}\n",
        quote(scenario)
    );
    if let Some(wd) = working_directory {
        with.push_str(&format!("          working-directory: {}\n", quote(wd)));
    }
    format!(
        "# Written by `fluxloop init`: pulls the scenario, runs the agent, uploads\n\
         # the results. Needs the repository secret FLUXLOOP_API_KEY (a read-write\n\
         # service-account key: fluxloop apikeys create --type service-account).\n\
         name: FluxLoop\n\
         on: [push, pull_request]\n\
         permissions:\n  contents: read\n\
         jobs:\n  fluxloop:\n    runs-on: ubuntu-latest\n    steps:\n\
         \x20     - uses: actions/checkout@v5\n\
         \x20     - uses: fluxloop/fluxloop-rs@v{v}\n        with:\n{with}",
        v = env!("CARGO_PKG_VERSION")
    )
}

/// The include of the GitLab template, as ci-templates/gitlab/README.md shows it.
fn gitlab_snippet(scenario: &str) -> String {
    format!(
        "\n# Added by `fluxloop init` (ci-templates/gitlab/README.md)\n\
         include:\n  - remote: https://raw.githubusercontent.com/fluxloop/fluxloop-rs/v{v}/ci-templates/gitlab/fluxloop.gitlab-ci.yml\n\
         \n\
         fluxloop:\n  extends: .fluxloop\n  variables:\n    FLUXLOOP_SCENARIO: {}\n",
        serde_json::to_string(scenario).unwrap_or_default(),
        v = env!("CARGO_PKG_VERSION")
    )
}

/// The stage of ci-templates/jenkins/Jenkinsfile (the install stage is there too).
fn jenkins_stage() -> String {
    "stage('FluxLoop') {\n    steps {\n        withCredentials([string(credentialsId: 'fluxloop-api-key', variable: 'FLUXLOOP_API_KEY')]) {\n            sh 'fluxloop sync pull --yes'\n            sh 'fluxloop test --no-skip-upload --yes'\n        }\n    }\n}\n".into()
}

/// `text` with `stage` added as the last stage of its declarative
/// `stages { }` block, indented one level deeper than the block; `None`
/// when there is no such block or its braces do not close.
fn with_stage(text: &str, stage: &str) -> Option<String> {
    let open = text.find("stages {").or_else(|| text.find("stages{"))?;
    let body = open + text[open..].find('{')? + 1;
    let mut depth = 1usize;
    let mut close = None;
    for (i, c) in text[body..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(body + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let line_start = text[..open].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..open]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let inner = format!("{indent}    ");
    let mut block = String::new();
    let before = text[..close].trim_end();
    block.push_str(before);
    block.push('\n');
    for line in stage.lines() {
        block.push_str(&format!("{inner}{line}\n"));
    }
    block.push_str(&indent);
    block.push_str(&text[close..]);
    Some(block)
}

/// Writes the snippet for the CI the repository uses; returns which one.
fn ci_snippet(
    root: &Path,
    dir: &Path,
    scenario: &str,
    force: bool,
    files: &mut Vec<FileReport>,
) -> Result<Option<&'static str>> {
    let mut ci = None;
    if root.join(".github/workflows").is_dir() {
        let wd = dir
            .strip_prefix(root)
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
            .map(|r| r.to_string_lossy().into_owned());
        let text = github_workflow(scenario, wd.as_deref());
        let path = root.join(".github/workflows/fluxloop.yml");
        files.push(write_file(&path, &text, force, "GitHub Actions workflow")?);
        ci = Some("github");
    }
    let gitlab = root.join(".gitlab-ci.yml");
    if gitlab.is_file() {
        files.push(gitlab_include(&gitlab, scenario)?);
        ci = ci.or(Some("gitlab"));
    }
    let jenkins = root.join("Jenkinsfile");
    if jenkins.is_file() {
        let text = read(&jenkins)?;
        let (action, snippet) = if text.contains("fluxloop test") {
            (Action::Kept, None)
        } else if let Some(edited) = with_stage(&text, &jenkins_stage()) {
            crate::atomic_file::write_atomic(&jenkins, 0o644, |f| f.write_all(edited.as_bytes()))
                .map_err(|e| Error::io("write", &jenkins, e))?;
            (Action::AddedStage, None)
        } else {
            // No declarative `stages { }` to add to (a scripted pipeline):
            // the stage is shown for the user to place.
            (Action::Shown, Some(jenkins_stage()))
        };
        files.push(FileReport {
            path: jenkins.display().to_string(),
            action,
            what: "Jenkins stage, inside stages { }",
            snippet,
        });
        ci = ci.or(Some("jenkins"));
    }
    Ok(ci)
}

/// Appends the include, unless the file has one already (fluxloop's, kept;
/// another `include:` key, which a second one would break: shown instead).
fn gitlab_include(path: &Path, scenario: &str) -> Result<FileReport> {
    let text = read(path)?;
    let snippet = gitlab_snippet(scenario);
    let (action, shown) = if text.contains("fluxloop.gitlab-ci.yml") {
        (Action::Kept, None)
    } else if text.lines().any(|l| l.starts_with("include:")) {
        (Action::Shown, Some(snippet))
    } else {
        append(path, &text, &snippet)?;
        (Action::Appended, None)
    };
    Ok(FileReport {
        path: path.display().to_string(),
        action,
        what: "GitLab CI include",
        snippet: shown,
    })
}

/// Adds the missing ignore lines.
fn gitignore(dir: &Path) -> Result<FileReport> {
    let path = dir.join(".gitignore");
    let text = if path.exists() {
        read(&path)?
    } else {
        String::new()
    };
    let have: Vec<&str> = text.lines().map(str::trim).collect();
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .filter(|e| !have.contains(e) && !have.contains(&e.trim_end_matches('/')))
        .copied()
        .collect();
    let action = if missing.is_empty() {
        Action::Kept
    } else {
        let block = format!(
            "\n# fluxloop: results and credentials\n{}\n",
            missing.join("\n")
        );
        append(&path, &text, &block)?;
        if text.is_empty() {
            Action::Created
        } else {
            Action::Appended
        }
    };
    Ok(FileReport {
        path: path.display().to_string(),
        action,
        what: "ignores results and credentials files",
        snippet: None,
    })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

fn append(path: &Path, old: &str, text: &str) -> Result<()> {
    let sep = if old.is_empty() || old.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let text = if old.is_empty() {
        text.trim_start()
    } else {
        text
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{sep}{text}").as_bytes()))
        .map_err(|e| Error::io("write", path, e))
}

/// Writes `path` unless it exists and `force` is off.
fn write_file(path: &Path, text: &str, force: bool, what: &'static str) -> Result<FileReport> {
    let exists = path.exists();
    let action = match (exists, force) {
        (true, false) => Action::Kept,
        (true, true) => Action::Overwrote,
        (false, _) => Action::Created,
    };
    if action != Action::Kept {
        crate::atomic_file::write_atomic(path, 0o644, |f| f.write_all(text.as_bytes()))
            .map_err(|e| Error::io("write", path, e))?;
    }
    Ok(FileReport {
        path: path.display().to_string(),
        action,
        what: if action == Action::Kept {
            "exists; --force overwrites"
        } else {
            what
        },
        snippet: None,
    })
}

/// The git work tree's top directory, or `dir` outside git.
fn repository_root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(dir)
        .to_path_buf()
}

fn relative(base: &Path, path: &Path) -> String {
    if let Ok(r) = path.strip_prefix(base) {
        return r.display().to_string();
    }
    let up = base
        .ancestors()
        .position(|a| path.starts_with(a))
        .unwrap_or(0);
    let root = base.ancestors().nth(up).unwrap_or(base);
    let rest = path.strip_prefix(root).unwrap_or(path);
    format!("{}{}", "../".repeat(up), rest.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_project_script() {
        let t = "[project]\nname = \"x\"\n\n[project.scripts]\n# the agent\nsupport-agent = \"agent.main:run\"\nother = \"b:c\"\n[tool.x]\n";
        assert_eq!(first_project_script(t).as_deref(), Some("support-agent"));
        assert_eq!(first_project_script("[project]\nname = \"x\"\n"), None);
    }

    #[test]
    fn scenario_from_the_directory() {
        assert_eq!(default_scenario(Path::new("/a/My Agent_2")), "my-agent-2");
        assert_eq!(default_scenario(Path::new("/")), "my-scenario");
    }

    #[test]
    fn paths_relative_to_the_project() {
        let base = Path::new("/r/sub/dir");
        assert_eq!(
            relative(base, Path::new("/r/sub/dir/fluxloop.yaml")),
            "fluxloop.yaml"
        );
        assert_eq!(
            relative(base, Path::new("/r/.gitignore")),
            "../../.gitignore"
        );
    }
}

#[cfg(test)]
mod stage_tests {
    use super::with_stage;

    #[test]
    fn a_stage_goes_last_inside_stages_at_its_indent() {
        let file = "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n            steps { sh 'make' }\n        }\n    }\n    post { always { echo \"${env.X}\" } }\n}\n";
        let got = with_stage(file, "stage('F') {\n    steps { sh 'f' }\n}\n").unwrap();
        assert_eq!(
            got,
            "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n            steps { sh 'make' }\n        }\n        stage('F') {\n            steps { sh 'f' }\n        }\n    }\n    post { always { echo \"${env.X}\" } }\n}\n"
        );
        assert_eq!(
            with_stage("pipeline {\n    stages { }\n}\n", "stage('F') {}\n").unwrap(),
            "pipeline {\n    stages {\n        stage('F') {}\n    }\n}\n"
        );
        assert_eq!(with_stage("node { sh 'make' }\n", "x\n"), None);
        assert_eq!(with_stage("pipeline { stages { \n", "x\n"), None);
    }
}
