//! The Jenkins pipelines (`ci-templates/jenkins/Jenkinsfile`, declarative, and
//! `Jenkinsfile.scripted`): Groovy syntax checked by Debian's `groovy`, then
//! every `sh` step run the way Jenkins runs it (`sh -xe` in the workspace, in
//! order, stopping at the first failure) with the environment its enclosing
//! blocks give it: `withCredentials([string(credentialsId: 'fluxloop-api-key',
//! variable: 'FLUXLOOP_API_KEY')])` binds the key, `withEnv(["PATH+X=…"])`
//! prepends to PATH; the `junit` step's pattern must then match a report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{self, FileServer};

const CREDENTIALS: &str =
    "withCredentials([string(credentialsId: 'fluxloop-api-key', variable: 'FLUXLOOP_API_KEY')])";

/// One `sh` step and the labels of the blocks around it (outermost first),
/// e.g. `stage('FluxLoop')`, `withEnv([...])`.
#[derive(Debug)]
struct ShStep {
    script: String,
    blocks: Vec<String>,
}

/// Finds the `sh '…'` / `sh '''…'''` steps of a Groovy pipeline. Strings and
/// comments are skipped when tracking `{` `}`, so shell `${…}` inside a step
/// does not confuse the block structure.
fn sh_steps(src: &str) -> Vec<ShStep> {
    let b = src.as_bytes();
    let mut steps = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut label_start = 0;
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").expect("unterminated comment") + 2;
        } else if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            let q = &rest[..3];
            i += 3
                + rest[3..]
                    .find(q)
                    .expect("unterminated triple-quoted string")
                + 3;
        } else if b[i] == b'\'' || b[i] == b'"' {
            let q = b[i];
            i += 1;
            while b[i] != q {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if b[i] == b'{' {
            stack.push(label(&src[label_start..i]));
            i += 1;
            label_start = i;
        } else if b[i] == b'}' {
            stack.pop().expect("unbalanced }");
            i += 1;
            label_start = i;
        } else if rest.starts_with("sh ")
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let arg = rest[3..].trim_start();
            let (script, len) = if let Some(body) = arg.strip_prefix("'''") {
                let end = body.find("'''").expect("unterminated sh '''");
                (dedent(&unescape(&body[..end])), end + 6)
            } else if let Some(body) = arg.strip_prefix('\'') {
                let bb = body.as_bytes();
                let mut end = 0;
                while bb[end] != b'\'' {
                    end += if bb[end] == b'\\' { 2 } else { 1 };
                }
                (unescape(&body[..end]), end + 2)
            } else {
                panic!(
                    "sh steps must use single-quoted strings (no Groovy interpolation): {}",
                    &arg[..arg.len().min(40)]
                );
            };
            steps.push(ShStep {
                script,
                blocks: stack.clone(),
            });
            i += 3 + (rest[3..].len() - arg.len()) + len;
            label_start = i;
        } else {
            i += 1;
        }
    }
    assert!(stack.is_empty(), "unbalanced braces: {stack:?}");
    steps
}

/// A block's label: the last line of code before its `{`, comments dropped.
fn label(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Groovy single-quoted string escapes.
fn unescape(s: &str) -> String {
    s.replace("\\\\", "\u{0}")
        .replace("\\'", "'")
        .replace("\\$", "$")
        .replace('\u{0}', "\\")
}

fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = s
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect();
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |n| n + 1);
    lines[first..last].join("\n") + "\n"
}

/// A Jenkins workspace and the agent's environment.
struct Agent {
    workspace: PathBuf,
    env: BTreeMap<String, String>,
}

impl Agent {
    fn new(dir: &Path) -> Agent {
        let workspace = dir.join("workspace");
        std::fs::create_dir_all(&workspace).expect("mkdir");
        std::fs::create_dir_all(dir.join("workspace@tmp")).expect("mkdir");
        let env: BTreeMap<String, String> = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", dir.display().to_string()),
            ("WORKSPACE", workspace.display().to_string()),
            (
                "WORKSPACE_TMP",
                dir.join("workspace@tmp").display().to_string(),
            ),
            ("JENKINS_URL", "https://jenkins.example.com/".into()),
            (
                "BUILD_URL",
                "https://jenkins.example.com/job/agent/7/".into(),
            ),
            ("BUILD_NUMBER", "7".into()),
            ("JOB_NAME", "agent".into()),
            ("BRANCH_NAME", "main".into()),
            (
                "GIT_COMMIT",
                "0123456789abcdef0123456789abcdef01234567".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Agent { workspace, env }
    }

    /// Runs the steps in order like Jenkins; returns the exit code of the
    /// first failing step (`None`: all passed) and the combined log.
    fn run(&self, steps: &[ShStep], key: &str) -> (Option<i32>, String) {
        let mut log = String::new();
        for (n, step) in steps.iter().enumerate() {
            let mut env = self.env.clone();
            for block in &step.blocks {
                if block.starts_with("withCredentials") {
                    assert_eq!(
                        block, CREDENTIALS,
                        "the credentials binding the docs describe"
                    );
                    env.insert("FLUXLOOP_API_KEY".into(), key.into());
                } else if block.starts_with("withEnv") {
                    let spec = block.split('"').nth(1).expect("withEnv([\"PATH+X=...\"])");
                    let (name, value) = spec.split_once('=').expect("NAME=value");
                    assert!(name.starts_with("PATH+"), "only PATH+X is emulated: {name}");
                    let value =
                        value.replace("${env.WORKSPACE}", &self.workspace.display().to_string());
                    assert!(
                        !value.contains('$'),
                        "unknown Groovy interpolation in {spec}"
                    );
                    let path = format!("{value}:{}", env["PATH"]);
                    env.insert("PATH".into(), path);
                }
            }
            let mut c = Command::new("sh");
            c.arg("-xe")
                .arg("-c")
                .arg(&step.script)
                .current_dir(&self.workspace)
                .env_clear()
                .envs(&env);
            let ran = util::run_bounded(c, Duration::from_secs(300));
            log.push_str(&format!(
                "=== sh step {n} in {:?}\n{}\n",
                step.blocks,
                ran.all()
            ));
            if !ran.ok() {
                return (Some(ran.code.unwrap_or(-1)), log);
            }
        }
        (None, log)
    }
}

/// The `testResults:` pattern of the pipeline's `junit` step.
fn junit_pattern(src: &str) -> String {
    let at = src.find("junit ").expect("a junit step");
    let rest = &src[at..];
    let p = rest.find("testResults: '").expect("junit testResults:") + "testResults: '".len();
    rest[p..p + rest[p..].find('\'').expect("quote")].to_string()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(util::repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_pipelines_parse_as_groovy() {
    let groovy = util::require("groovy", "apt-get install -y groovy");
    let checker = tempfile::tempdir().expect("tempdir");
    let script = checker.path().join("parse.groovy");
    std::fs::write(
        &script,
        "args.each { new GroovyShell().parse(new File(it)) }\nprintln 'parsed'\n",
    )
    .expect("write");
    let mut c = Command::new(groovy);
    c.arg(&script)
        .arg(util::repo().join("ci-templates/jenkins/Jenkinsfile"))
        .arg(util::repo().join("ci-templates/jenkins/Jenkinsfile.scripted"));
    // Debian's groovy wants JAVA_HOME or /usr/lib/jvm/default-java.
    if std::env::var_os("JAVA_HOME").is_none() && !Path::new("/usr/lib/jvm/default-java").exists() {
        if let Some(java) = util::which("java").and_then(|j| j.canonicalize().ok()) {
            if let Some(home) = java.parent().and_then(Path::parent) {
                c.env("JAVA_HOME", home);
            }
        }
    }
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(ran.ok() && ran.stdout.contains("parsed"), "{}", ran.all());
}

#[test]
#[ignore = "needs curl"]
fn jenkins_declarative_pipeline_installs_pulls_tests_and_uploads() {
    util::require("curl", "apt-get install -y curl");
    let src = read("ci-templates/jenkins/Jenkinsfile");
    assert!(
        src.contains(&format!("FLUXLOOP_VERSION = '{}'", util::VERSION)),
        "pinned to the crate version"
    );
    let steps = sh_steps(&src);
    let scripts: Vec<&str> = steps.iter().map(|s| s.script.trim()).collect();
    assert_eq!(
        &scripts[1..],
        [
            "fluxloop sync pull --yes",
            "fluxloop test --no-skip-upload --yes"
        ]
    );
    for s in &steps[1..] {
        assert!(s.blocks.iter().any(|b| b == CREDENTIALS), "{s:?}");
    }
    assert_eq!(junit_pattern(&src), ".fluxloop/results/*/junit.xml");

    for failing in [false, true] {
        let site = tempfile::tempdir().expect("tempdir");
        util::release_site(site.path(), false);
        let server = FileServer::serve(site.path());
        let demo = util::demo_platform();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut agent = Agent::new(dir.path());
        util::write_agent_project(&agent.workspace, &demo.scenario, failing);
        agent
            .env
            .insert("FLUXLOOP_VERSION".into(), util::VERSION.into());
        agent
            .env
            .insert("FLUXLOOP_RELEASE_URL".into(), server.url.clone());
        agent
            .env
            .insert("FLUXLOOP_API_ENDPOINT".into(), demo.url.clone());

        let (failed, log) = agent.run(&steps, &demo.key);
        assert!(!log.contains(&demo.key), "the key was printed\n{log}");
        if failing {
            assert_eq!(
                failed,
                Some(10),
                "failed runs fail the build with 10\n{log}"
            );
        } else {
            assert_eq!(failed, None, "{log}");
        }
        assert_eq!(server.requests().len(), 2);
        assert_eq!(
            demo.platform.batch_ids().expect("batches").len(),
            1,
            "uploaded\n{log}"
        );
        // post { always { junit … } }
        let reports: Vec<_> = util::result_dirs(&agent.workspace)
            .into_iter()
            .map(|d| d.join("junit.xml"))
            .filter(|f| f.is_file())
            .collect();
        assert_eq!(
            reports.len(),
            1,
            "the junit pattern matches one report\n{log}"
        );
    }
}

#[test]
#[ignore = "needs curl"]
fn jenkins_declarative_pipeline_refuses_a_tampered_binary() {
    util::require("curl", "apt-get install -y curl");
    let steps = sh_steps(&read("ci-templates/jenkins/Jenkinsfile"));
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), true);
    let server = FileServer::serve(site.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::new(dir.path());
    agent
        .env
        .insert("FLUXLOOP_VERSION".into(), util::VERSION.into());
    agent
        .env
        .insert("FLUXLOOP_RELEASE_URL".into(), server.url.clone());
    let (failed, log) = agent.run(&steps, "flx_sa_unused_unused_unused_unused");
    assert_eq!(failed, Some(1), "{log}");
    assert!(
        log.contains("FAILED"),
        "sha256sum -c reports the mismatch\n{log}"
    );
    assert!(
        !log.contains("=== sh step 1"),
        "nothing runs after the install step\n{log}"
    );
}

#[test]
fn jenkins_scripted_snippet_runs_the_seed_commands() {
    let src = read("ci-templates/jenkins/Jenkinsfile.scripted");
    let steps = sh_steps(&src);
    let scripts: Vec<&str> = steps.iter().map(|s| s.script.trim()).collect();
    assert_eq!(
        scripts,
        [
            "fluxloop sync pull --yes",
            "fluxloop test --no-skip-upload --yes"
        ]
    );
    assert_eq!(junit_pattern(&src), ".fluxloop/results/*/junit.xml");

    let demo = util::demo_platform();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::new(dir.path());
    util::write_agent_project(&agent.workspace, &demo.scenario, false);
    // fluxloop is installed on the agent (here: the build under test).
    let bin = Path::new(env!("CARGO_BIN_EXE_fluxloop"))
        .parent()
        .expect("bin dir");
    let path = format!("{}:{}", bin.display(), agent.env["PATH"]);
    agent.env.insert("PATH".into(), path);
    agent
        .env
        .insert("FLUXLOOP_API_ENDPOINT".into(), demo.url.clone());
    let (failed, log) = agent.run(&steps, &demo.key);
    assert_eq!(failed, None, "{log}");
    assert!(!log.contains(&demo.key), "the key was printed\n{log}");
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "{log}"
    );
}

#[test]
fn sh_step_scanner_sees_blocks_through_strings() {
    let src = "node {\n  withEnv([\"PATH+A=${env.WORKSPACE}/b\"]) {\n    sh '''\n      echo ${X#v} }\n    '''\n    sh 'a \\'b\\''\n  }\n}\n";
    let steps = sh_steps(src);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].script, "echo ${X#v} }\n");
    assert_eq!(
        steps[0].blocks,
        ["node", "withEnv([\"PATH+A=${env.WORKSPACE}/b\"])"]
    );
    assert_eq!(steps[1].script, "a 'b'");
}
