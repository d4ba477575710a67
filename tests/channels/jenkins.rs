//! The Jenkinsfiles executed, not scanned: no Jenkins can be installed here,
//! so `tests/channels/jenkins-harness.groovy`, run by Debian's `groovy`,
//! defines the pipeline steps they use and runs each for real (`sh` scripts,
//! `environment {}`, `withEnv`, `withCredentials` with masking, `junit`
//! parsing the reports, `archiveArtifacts`, `post`); any other step fails the
//! build. The release comes from a local file server holding the real release
//! build, the platform is a real `fluxloop-platform`. Also CodeNarc
//! (npm-groovy-lint) over the files, and the docs' Groovy snippets run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::docs;
use crate::util::{self, FileServer, Ran};

const JENKINSFILE: &str = "ci-templates/jenkins/Jenkinsfile";
const SCRIPTED: &str = "ci-templates/jenkins/Jenkinsfile.scripted";
const RELEASES: &str = "https://github.com/fluxloop/fluxloop-rs/releases/download";
const CREDENTIAL: &str = "fluxloop-api-key";

fn read(rel: &str) -> String {
    std::fs::read_to_string(util::repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Debian's groovy wants JAVA_HOME (or /usr/lib/jvm/default-java).
fn java_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("JAVA_HOME") {
        return Some(h.into());
    }
    let java = util::which("java")?.canonicalize().ok()?;
    java.parent()?.parent().map(Path::to_path_buf)
}

/// One build: the agent's workspace (the checkout) and what the harness did.
struct Build {
    root: tempfile::TempDir,
    ran: Ran,
}

impl Build {
    fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    fn archive(&self) -> PathBuf {
        self.root.path().join("archive")
    }

    #[track_caller]
    fn finished(&self, result: &str) {
        let last = self.ran.stdout.lines().last().unwrap_or("");
        let code = if result == "SUCCESS" { 0 } else { 1 };
        assert!(
            last == format!("Finished: {result}") && self.ran.code == Some(code),
            "want Finished: {result}\n{}",
            self.ran.all()
        );
    }
}

/// A Jenkins agent for one build: a workspace holding the agent project, the
/// `fluxloop-api-key` Secret text credential, and the agent's environment
/// (`env`: what Manage Jenkins > System > Global properties would set).
fn build(jenkinsfile: &str, demo: &util::Demo, failing: bool, env: &[(&str, &str)]) -> Build {
    let groovy = util::require("groovy", "apt-get install -y groovy");
    let root = tempfile::tempdir().expect("tempdir");
    let ws = root.path().join("workspace");
    util::write_agent_project(&ws, &demo.scenario, failing);
    for d in ["archive", "home"] {
        std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
    }
    let file = root.path().join("Jenkinsfile");
    std::fs::write(&file, jenkinsfile).expect("write Jenkinsfile");
    let creds = root.path().join("credentials");
    std::fs::write(&creds, format!("{CREDENTIAL}={}\n", demo.key)).expect("credentials");
    let mut c = Command::new(groovy);
    c.arg(util::repo().join("tests/channels/jenkins-harness.groovy"))
        .arg(&file)
        .arg(&ws)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.path().join("home"))
        .env("LANG", "C.UTF-8")
        .env("FLUXLOOP_API_ENDPOINT", &demo.url)
        .env("HARNESS_CREDENTIALS", &creds)
        .env("HARNESS_ARCHIVE", root.path().join("archive"));
    if let Some(h) = java_home() {
        c.env("JAVA_HOME", h);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let ran = util::run_bounded(c, Duration::from_secs(300));
    Build { root, ran }
}

/// The declarative Jenkinsfile pointed at a release mirror that signs with
/// its own key: the two lines a user of such a mirror changes.
fn mirrored(url: &str) -> String {
    let src = read(JENKINSFILE);
    let line = format!("FLUXLOOP_RELEASE_URL = '{RELEASES}'");
    assert!(src.contains(&line), "the Jenkinsfile sets {line}");
    let key = format!(
        "FLUXLOOP_MINISIGN_PUBLIC_KEY = '{}'",
        crate::supply::PINNED_KEY
    );
    assert!(src.contains(&key), "the Jenkinsfile pins {key}");
    src.replace(&line, &format!("FLUXLOOP_RELEASE_URL = '{url}'"))
        .replace(
            &key,
            &format!(
                "FLUXLOOP_MINISIGN_PUBLIC_KEY = '{}'",
                util::signing_key().public
            ),
        )
}

fn release(tamper: bool) -> (tempfile::TempDir, FileServer) {
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), tamper);
    let server = FileServer::serve(site.path());
    (site, server)
}

#[track_caller]
fn assert_uploaded_with_report(b: &Build, demo: &util::Demo, failed: bool) {
    assert!(
        !b.ran.stdout.contains(&demo.key) && !b.ran.stderr.contains(&demo.key),
        "the key is in the build log\n{}",
        b.ran.all()
    );
    let batches = demo.platform.batch_ids().expect("batches");
    assert_eq!(batches.len(), 1, "{}", b.ran.all());
    let total = demo.platform.run_count(&batches[0]).expect("count");
    let failures = if failed { total } else { 0 };
    // Substring: one line among the build's log.
    let line = format!("junit: {total} tests, {failures} failures in 1 report(s)\n");
    assert!(b.ran.stdout.contains(&line), "{line}{}", b.ran.all());
    let archived = util::result_dirs(&b.archive());
    assert_eq!(archived.len(), 1, "{}", b.ran.all());
    assert!(archived[0].join("junit.xml").is_file());
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_declarative_pipeline_installs_pulls_tests_and_uploads() {
    let src = read(JENKINSFILE);
    assert!(src.contains(&format!("FLUXLOOP_VERSION = '{}'", util::VERSION)));
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    let b = build(&mirrored(&server.url), &demo, false, &[]);
    b.finished("SUCCESS");
    assert_uploaded_with_report(&b, &demo, false);
    assert_eq!(server.requests().len(), 3);
    assert!(b.workspace().join(".fluxloop-bin/fluxloop").is_file());
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_declarative_pipeline_fails_on_failed_runs_and_still_reports() {
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    let b = build(&mirrored(&server.url), &demo, true, &[]);
    b.finished("FAILURE");
    assert!(
        b.ran
            .stdout
            .contains("ERROR: script returned exit code 10\n"),
        "{}",
        b.ran.all()
    );
    assert_uploaded_with_report(&b, &demo, true);
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_declarative_pipeline_refuses_a_tampered_binary() {
    let (_site, server) = release(true);
    let demo = util::demo_platform();
    let b = build(&mirrored(&server.url), &demo, false, &[]);
    b.finished("FAILURE");
    assert!(
        b.ran.stdout.contains(&format!("{}: FAILED\n", util::ASSET)),
        "sha256sum -c refused it\n{}",
        b.ran.all()
    );
    assert!(b
        .ran
        .stdout
        .contains("Stage \"FluxLoop\" skipped due to earlier failure(s)\n"));
    assert!(
        demo.platform.requests().is_empty(),
        "the tampered binary ran"
    );
}

/// Checksums signed by a key other than the pinned one are not trusted.
#[test]
#[ignore = "needs groovy"]
fn jenkins_declarative_pipeline_refuses_checksums_signed_by_another_key() {
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    // minisign's own project key: a valid key that did not sign this release.
    let other = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let src = mirrored(&server.url).replace(&util::signing_key().public, other);
    let b = build(&src, &demo, false, &[]);
    b.finished("FAILURE");
    assert!(
        b.ran
            .stdout
            .contains("is not signed by the fluxloop release key; refusing to run"),
        "{}",
        b.ran.all()
    );
    assert!(demo.platform.requests().is_empty(), "the binary ran");
}

/// The harness really honours `environment {}`: a renamed variable breaks
/// the pipeline, as it would in Jenkins.
#[test]
#[ignore = "needs groovy"]
fn jenkins_pipeline_with_a_renamed_environment_variable_fails() {
    let (_site, server) = release(false);
    let demo = util::demo_platform();
    let src = mirrored(&server.url);
    let renamed = src.replace("FLUXLOOP_VERSION = '", "FLUXLOOP_VERSON = '");
    assert_ne!(renamed, src);
    let b = build(&renamed, &demo, false, &[]);
    b.finished("FAILURE");
    assert!(demo.platform.batch_ids().expect("batches").is_empty());
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_harness_fails_a_step_it_does_not_define() {
    let demo = util::demo_platform();
    let b = build(
        "node {\n    sh 'true'\n    slackSend channel: '#ci'\n}\n",
        &demo,
        false,
        &[],
    );
    b.finished("FAILURE");
    assert!(
        b.ran
            .stdout
            .contains("ERROR: unknown pipeline step 'slackSend'"),
        "{}",
        b.ran.all()
    );
}

/// As in Jenkins, a bound secret that a step prints shows as `****`.
#[test]
#[ignore = "needs groovy"]
fn jenkins_harness_masks_bound_credentials_in_the_log() {
    let demo = util::demo_platform();
    let b = build(
        &format!(
            "node {{\n    withCredentials([string(credentialsId: '{CREDENTIAL}', variable: 'K')]) {{\n        \
             sh 'echo \"key=$K\"'\n    }}\n}}\n"
        ),
        &demo,
        false,
        &[],
    );
    b.finished("SUCCESS");
    assert!(b.ran.stdout.contains("\nkey=****\n"), "{}", b.ran.all());
    assert!(!b.ran.stdout.contains(&demo.key), "{}", b.ran.all());
}

/// fluxloop on the agent's PATH, as the scripted form assumes.
fn agent_path(b: &tempfile::TempDir) -> String {
    let bin = b.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(util::release_dist().join(util::ASSET), bin.join("fluxloop"))
        .expect("symlink");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
#[ignore = "needs groovy"]
fn jenkins_scripted_pipeline_and_the_docs_snippets_run() {
    let tools = tempfile::tempdir().expect("tempdir");
    let path = agent_path(&tools);
    let mut pipelines = vec![(SCRIPTED.to_string(), read(SCRIPTED))];
    for f in docs::DOCS {
        for b in docs::blocks(f).into_iter().filter(|b| b.lang == "groovy") {
            // A snippet of steps runs inside the smallest scripted pipeline.
            let wrapped = format!("node {{\n    checkout scm\n{}}}\n", b.text);
            pipelines.push((b.at(), wrapped));
        }
    }
    assert!(
        pipelines.len() >= 3,
        "README and docs/ci.md each have a snippet"
    );
    for (at, src) in pipelines {
        let demo = util::demo_platform();
        let b = build(&src, &demo, false, &[("PATH", &path)]);
        assert!(b.ran.ok(), "{at}\n{}", b.ran.all());
        b.finished("SUCCESS");
        assert!(
            !b.ran.stdout.contains(&demo.key),
            "{at}: the key is in the log"
        );
        assert_eq!(demo.platform.batch_ids().expect("batches").len(), 1, "{at}");
    }
}

/// CodeNarc over `files` with the repository's rule set (below), failing on
/// a warning; also used for the sharding example's Jenkinsfile.
pub(crate) fn codenarc(files: &[PathBuf]) -> Ran {
    let lint = util::require("npm-groovy-lint", "npm install -g npm-groovy-lint@16.2.0");
    let mut c = Command::new(lint);
    c.args([
        "--noserver",
        "--output",
        "txt",
        "--failon",
        "warning",
        "--config",
    ])
    .arg(util::repo().join("tests/channels/groovylintrc.json"))
    .args(files)
    .current_dir(util::repo());
    if let Some(h) = java_home() {
        c.env("JAVA_HOME", h);
    }
    util::run_bounded(c, Duration::from_secs(300))
}

/// CodeNarc through npm-groovy-lint. Off, with reasons: GStringExpression-
/// WithinString (the `${...}` in single-quoted `sh` scripts are the shell's,
/// on purpose: Groovy must not interpolate the key), NestedBlockDepth (the
/// declarative pipeline's own nesting), CompileStatic (Jenkins runs pipelines
/// through CPS, which does not allow it).
#[test]
#[ignore = "needs npm-groovy-lint"]
fn jenkinsfiles_pass_codenarc() {
    let ran = codenarc(&[util::repo().join(JENKINSFILE), util::repo().join(SCRIPTED)]);
    assert!(ran.ok(), "{}", ran.all());

    // The harness itself: no errors. Its warnings are what a test harness
    // is (java.io.File, System.exit, an abstract Script base class).
    let mut c = Command::new(util::require(
        "npm-groovy-lint",
        "npm install -g npm-groovy-lint@16.2.0",
    ));
    c.args(["--noserver", "--output", "txt", "--failon", "error"])
        .arg(util::repo().join("tests/channels/jenkins-harness.groovy"))
        .current_dir(util::repo());
    if let Some(h) = java_home() {
        c.env("JAVA_HOME", h);
    }
    let ran = util::run_bounded(c, Duration::from_secs(300));
    assert!(ran.ok(), "{}", ran.all());
}

/// The stage `fluxloop init` adds to a user's declarative Jenkinsfile
/// (issue 18) runs under the harness: it pulls, tests and uploads.
#[test]
#[ignore = "needs groovy"]
fn the_stage_init_adds_to_a_jenkinsfile_runs() {
    let demo = util::demo_platform();
    let repo = tempfile::tempdir().expect("tempdir");
    let original = "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n            steps {\n                sh 'true'\n            }\n        }\n    }\n}\n";
    std::fs::write(repo.path().join("Jenkinsfile"), original).expect("write");
    std::fs::write(repo.path().join("agent.py"), "").expect("write");
    let fluxloop = Path::new(env!("CARGO_BIN_EXE_fluxloop"));
    let out = Command::new(fluxloop)
        .args(["init", "--yes", "--scenario", &demo.scenario])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", repo.path().join("home"))
        .current_dir(repo.path())
        .output()
        .expect("fluxloop init");
    assert!(out.status.success(), "{out:?}");
    let edited = std::fs::read_to_string(repo.path().join("Jenkinsfile")).expect("read");
    assert!(edited.contains("stage('FluxLoop')"), "{edited}");
    let path = format!(
        "{}:{}",
        fluxloop.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let b = build(&edited, &demo, false, &[("PATH", &path)]);
    assert!(b.ran.code == Some(0), "{}", b.ran.all());
    let batches = demo.platform.batch_ids().expect("batch ids");
    assert_eq!(batches.len(), 1, "{}", b.ran.all());
}
