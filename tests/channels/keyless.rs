//! Keyless CI (issue 19) in runners we did not write: the docs' keyless
//! workflow and the action's keyless path under `act`, with a stand-in for
//! GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`; the GitLab template's keyless job
//! under gitlab-ci-local with the `FLUXLOOP_ID_TOKEN` GitLab would mint; the
//! Kubernetes keyless Job checked against the Kubernetes schema and its pod
//! run with the projected token file the kubelet would write. Every token is
//! signed by a local issuer (fluxloop-testkit) the platform trusts through a
//! policy created over its admin API, as a project admin would.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fluxloop_testkit::oidc::{github_claims, Issuer};
use serde_json::{json, Value};

use crate::act::{self, Act};
use crate::docs::{self, Yaml};
use crate::util::{self, FileServer, Ran};

const REPO: &str = "acme/support-bot";

/// Trusts `conditions` of `issuer` for the demo project, with an admin key
/// (the API a project admin uses; the keys page lists the policy).
fn trust(demo: &util::Demo, issuer: &str, conditions: Value) {
    let admin = demo
        .platform
        .create_key(&demo.project_id, "policy-admin", "user", "admin")
        .expect("admin key");
    let body = json!({
        "name": "ci",
        "issuer": issuer,
        "conditions": conditions,
        "scope": "read-write",
    });
    let url = format!(
        "{}/api/projects/{}/trust-policies",
        demo.url, demo.project_id
    );
    let answer = ureq::post(&url)
        .header("Authorization", &format!("Bearer {}", admin.key))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert_eq!(answer.status(), 201, "POST {url}");
}

/// No JWT (base64url JSON objects start `eyJ`) and no access token in `ran`.
#[track_caller]
fn no_token(ran: &Ran) {
    let all = ran.all();
    // substring: a token could appear anywhere in act's prefixed lines.
    assert!(
        !all.contains("eyJ") && !all.contains("flx_oidc_"),
        "a token is in the log\n{all}"
    );
}

#[track_caller]
fn one_batch(demo: &util::Demo, ran: &Ran) {
    assert_eq!(
        demo.platform.batch_ids().expect("batches").len(),
        1,
        "{}",
        ran.all()
    );
}

// --- GitHub Actions under act ------------------------------------------------

/// A consumer repository with no secret at all: the runner offers the token
/// request variables a job with `id-token: write` gets.
fn keyless_consumer(demo: &util::Demo, server: &FileServer, issuer: &Issuer) -> Act {
    let endpoint = issuer.github_token_endpoint(github_claims(REPO, "refs/heads/main"));
    let mut act = Act::new();
    util::write_agent_project(&act.repo(), &demo.scenario, false);
    act::commit(&act);
    act.env("FLUXLOOP_API_ENDPOINT", &demo.url)
        .env("FLUXLOOP_RELEASE_URL", &server.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &endpoint.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &endpoint.request_token);
    act
}

fn release_server() -> (tempfile::TempDir, FileServer) {
    let site = tempfile::tempdir().expect("tempdir");
    util::release_site(site.path(), false);
    let server = FileServer::serve(site.path());
    (site, server)
}

fn keyless_workflows() -> Vec<docs::Block> {
    let blocks: Vec<docs::Block> = docs::yaml_blocks(Yaml::GithubWorkflow)
        .into_iter()
        .filter(docs::is_keyless)
        .collect();
    assert!(!blocks.is_empty(), "docs/ci.md §12 has a keyless workflow");
    blocks
}

#[test]
#[ignore = "needs act"]
fn docs_keyless_workflow_uploads_under_act_with_no_key() {
    let (_site, server) = release_server();
    for b in keyless_workflows() {
        let demo = util::demo_platform();
        let issuer = Issuer::start();
        trust(
            &demo,
            issuer.url(),
            json!({"repository": REPO, "ref": "refs/heads/main"}),
        );
        let act = keyless_consumer(&demo, &server, &issuer);
        let ran = act.run(&b.text);
        assert!(
            ran.code == Some(0) && ran.stdout.contains("🏁  Job succeeded"),
            "{}\n{}",
            b.at(),
            ran.all()
        );
        one_batch(&demo, &ran);
        no_token(&ran);
    }
}

#[test]
#[ignore = "needs act"]
fn action_keyless_path_names_the_policy_mismatch_under_act() {
    let (_site, server) = release_server();
    let demo = util::demo_platform();
    let issuer = Issuer::start();
    // A policy for another branch: the job's push to main must not match.
    trust(
        &demo,
        issuer.url(),
        json!({"repository": REPO, "ref": "refs/heads/release"}),
    );
    let act = keyless_consumer(&demo, &server, &issuer);
    let ran = act.run(&keyless_workflows()[0].text);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    // substring: act prefixes each line of the step's output.
    for want in [
        "no_matching_policy",
        "subject:     repo:acme/support-bot:ref:refs/heads/main",
        "repository:  acme/support-bot",
    ] {
        assert!(ran.all().contains(want), "{want}\n{}", ran.all());
    }
    assert!(act::exit_status(&ran, 3), "{}", ran.all());
    assert!(demo.platform.batch_ids().expect("batches").is_empty());
    no_token(&ran);
}

#[test]
#[ignore = "needs act"]
fn action_oidc_true_without_id_token_permission_says_so_under_act() {
    let (_site, server) = release_server();
    let demo = util::demo_platform();
    let mut act = Act::new();
    util::write_agent_project(&act.repo(), &demo.scenario, false);
    act::commit(&act);
    act.env("FLUXLOOP_API_ENDPOINT", &demo.url)
        .env("FLUXLOOP_RELEASE_URL", &server.url);
    let wf = format!(
        "name: keyless\non: push\npermissions: {{}}\njobs:\n  agent:\n    runs-on: ubuntu-latest\n    \
         steps:\n      - uses: actions/checkout@v5\n      - uses: {}\n        with:\n          oidc: true\n",
        act::action_ref()
    );
    let ran = act.run(&wf);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    // substring: act prefixes each line of the step's output.
    assert!(
        ran.all().contains("permissions: id-token: write") && act::exit_status(&ran, 3),
        "{}",
        ran.all()
    );
}

#[test]
#[ignore = "needs zizmor"]
fn docs_keyless_workflow_passes_zizmor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = keyless_workflows()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let f = dir.path().join(format!("keyless-{i}.yml"));
            std::fs::write(&f, format!("# {}\n{}", b.at(), b.text)).expect("write");
            f
        })
        .collect();
    util::zizmor(&files);
}

// --- GitLab under gitlab-ci-local ----------------------------------------------

/// Claims of the ID token GitLab mints for a pipeline on a protected `main`.
fn gitlab_claims() -> Value {
    json!({
        "sub": format!("project_path:{REPO}:ref_type:branch:ref:main"),
        "aud": "fluxloop",
        "project_path": REPO,
        "namespace_path": "acme",
        "ref": "main",
        "ref_type": "branch",
        "ref_protected": "true",
        "pipeline_source": "push",
    })
}

/// The README's keyless job, its `id_tokens:` left as written (GitLab mints
/// the token; gitlab-ci-local cannot, so the token is the CI/CD variable
/// GitLab would set).
fn gitlab_keyless_ci() -> String {
    let block = docs::blocks("ci-templates/gitlab/README.md")
        .into_iter()
        .find(|b| b.lang == "yaml" && b.text.contains("FLUXLOOP_ID_TOKEN:"))
        .expect("README has the keyless job");
    assert!(block.text.contains("aud: fluxloop"), "{}", block.text);
    block.text
}

#[test]
#[ignore = "needs gitlab-ci-local"]
fn gitlab_keyless_job_uploads_with_the_id_token_and_no_key() {
    let glc = crate::gitlab::tools();
    let demo = util::demo_platform();
    let issuer = Issuer::start();
    trust(
        &demo,
        issuer.url(),
        json!({"project_path": REPO, "ref": "main", "ref_protected": "true"}),
    );
    let token = issuer.mint(gitlab_claims());
    let repo = crate::gitlab::repository(&gitlab_keyless_ci(), &demo, false);
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let bin = util::release_on_path(bin_dir.path());
    let ran = crate::gitlab::gitlab_ci_local_without_key(
        &glc,
        repo.path(),
        "fluxloop",
        &demo,
        &[("FLUXLOOP_ID_TOKEN", &token)],
        false,
        Some(bin),
    );
    assert!(ran.ok(), "{}", ran.all());
    one_batch(&demo, &ran);
    // substring: gitlab-ci-local prefixes each line of the job's log.
    assert!(!ran.all().contains(&token), "{}", ran.all());
}

// --- Kubernetes ----------------------------------------------------------------

fn keyless_job() -> (std::path::PathBuf, Value) {
    let file = util::repo().join("examples/kubernetes/keyless-job.yaml");
    let job = util::read_yaml(&file);
    (file, job)
}

#[test]
#[ignore = "needs kubernetes-validate"]
fn kubernetes_keyless_job_matches_the_kubernetes_schema() {
    let tool = util::require(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0",
    );
    let mut c = Command::new(tool);
    c.arg("--strict").arg(keyless_job().0);
    let ran = util::run_bounded(c, Duration::from_secs(120));
    // substring: the tool's line also names the schema version.
    assert!(
        ran.ok()
            && ran
                .stdout
                .contains("passed for resource job/fluxloop-support-bot-keyless"),
        "{}",
        ran.all()
    );
}

/// The claims of the token the kubelet projects for the Job's service
/// account into namespace `default`.
fn kubernetes_claims(spec: &Value, audience: &str) -> Value {
    let sa = spec["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    json!({
        "sub": format!("system:serviceaccount:default:{sa}"),
        "aud": [audience],
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": sa, "uid": "5d2b8c1e-0c2a-4c5e-9f0e-6a1b2c3d4e5f"},
        },
    })
}

/// `path` of the projected volume's token as mounted in the container, and
/// the audience the kubelet asks for.
fn projected_token(spec: &Value) -> (String, String) {
    let container = &spec["containers"][0];
    let mount = &container["volumeMounts"][0];
    let volume = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let source = &volume["projected"]["sources"][0]["serviceAccountToken"];
    let file = format!(
        "{}/{}",
        mount["mountPath"].as_str().expect("mountPath"),
        source["path"].as_str().expect("path")
    );
    (file, source["audience"].as_str().expect("audience").into())
}

#[test]
fn kubernetes_keyless_pod_uploads_with_its_projected_token() {
    let (_, job) = keyless_job();
    let spec = &job["spec"]["template"]["spec"];
    let (token_path, audience) = projected_token(spec);
    let container = &spec["containers"][0];
    let env: BTreeMap<String, Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(env["FLUXLOOP_OIDC_TOKEN_FILE"]["value"], token_path);
    assert_eq!(
        env["FLUXLOOP_API_ENDPOINT"]["valueFrom"]["configMapKeyRef"]["name"],
        "fluxloop"
    );
    assert!(!env.contains_key("FLUXLOOP_API_KEY"), "keyless: no key");
    let demo = util::demo_platform();
    let issuer = Issuer::start();
    trust(
        &demo,
        issuer.url(),
        json!({"sub": kubernetes_claims(spec, &audience)["sub"]}),
    );
    // The pod's filesystem: the image's workingDir and the projected volume,
    // both under one temp dir (the container's paths, rooted there).
    let pod = tempfile::tempdir().expect("tempdir");
    let root = |p: &str| pod.path().join(p.trim_start_matches('/'));
    let work = root(container["workingDir"].as_str().expect("workingDir"));
    util::write_agent_project(&work, &demo.scenario, false);
    let token_file = root(&token_path);
    std::fs::create_dir_all(token_file.parent().unwrap()).expect("mkdir");
    std::fs::write(&token_file, issuer.mint(kubernetes_claims(spec, &audience))).expect("token");
    let command: Vec<&str> = container["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    assert_eq!(command[0], "fluxloop");
    let mut c = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
    c.args(&command[1..])
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root("home"))
        .env("FLUXLOOP_OIDC_TOKEN_FILE", &token_file)
        .env("FLUXLOOP_API_ENDPOINT", &demo.url);
    let ran = util::run_bounded(c, Duration::from_secs(120));
    assert!(ran.ok(), "{}", ran.all());
    one_batch(&demo, &ran);
    no_token(&ran);
    assert!(Path::new(&token_file).exists());
}
