//! CI environment detection (GitHub Actions, GitLab CI, Jenkins, generic CI):
//! which system runs us, and the commit, branch, build URL and pull/merge
//! request an upload is attributed to (PLATFORM-API §5 `upload_meta.ci`).

use serde::Serialize;

use crate::config::Env;

pub(crate) mod fanout;

/// What the CI system tells about the build. Absent facts are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CiInfo {
    /// `github_actions`, `gitlab_ci`, `jenkins` or `generic`; `None` outside CI.
    pub(crate) provider: Option<String>,
    /// The commit under test (for a pull request: its head commit, not the
    /// merge commit GitHub checks out).
    pub(crate) commit: Option<String>,
    /// The branch under test (for a pull request: its source branch).
    pub(crate) branch: Option<String>,
    /// A link back to the build.
    pub(crate) build_url: Option<String>,
    /// The pull request number / merge request IID / Jenkins `CHANGE_ID`.
    pub(crate) pull_request: Option<String>,
}

/// Which CI system runs us, if any: the one test behind both [`detect`]
/// and every "are we in CI" question (prompts, browsers, warnings).
pub(crate) fn provider(env: &Env) -> Option<&'static str> {
    let set = |name: &str| env.get_lossy(name).is_some_and(|v| !v.trim().is_empty());
    if env.is_true("GITHUB_ACTIONS") {
        Some("github_actions")
    } else if env.is_true("GITLAB_CI") {
        Some("gitlab_ci")
    } else if set("JENKINS_URL") || set("JENKINS_HOME") {
        Some("jenkins")
    } else if env.is_true("CI") {
        Some("generic")
    } else {
        None
    }
}

/// The files GitHub Actions gives a step (`$GITHUB_STEP_SUMMARY`,
/// `$GITHUB_OUTPUT`), each when set.
#[derive(Clone, Debug, Default)]
pub(crate) struct GithubFiles {
    pub(crate) step_summary: Option<std::path::PathBuf>,
    pub(crate) output: Option<std::path::PathBuf>,
}

/// The step's files when [`provider`] says GitHub Actions runs us, else
/// `None`: the one decision behind the job summary and the step outputs.
pub(crate) fn github_files(env: &Env) -> Option<GithubFiles> {
    (provider(env) == Some("github_actions")).then(|| GithubFiles {
        step_summary: env.path("GITHUB_STEP_SUMMARY"),
        output: env.path("GITHUB_OUTPUT"),
    })
}

/// A variable's value, trimmed; `None` when unset or blank.
fn get(env: &Env, name: &str) -> Option<String> {
    env.get_lossy(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Detects the CI system from the environment. GitHub's event file is read
/// for the pull request head commit; a missing or broken file is ignored.
pub(crate) fn detect(env: &Env) -> CiInfo {
    match provider(env) {
        Some("github_actions") => github(env),
        Some("gitlab_ci") => gitlab(env),
        Some("jenkins") => jenkins(env),
        Some("generic") => generic(env),
        _ => CiInfo::default(),
    }
}

fn github(env: &Env) -> CiInfo {
    let get = |name: &str| get(env, name);
    let event = env
        .path("GITHUB_EVENT_PATH")
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let pr = event
        .as_ref()
        .and_then(|e| e.get("pull_request"))
        .filter(|p| p.is_object());
    let pr_head_sha = pr
        .and_then(|p| p.pointer("/head/sha"))
        .and_then(|v| v.as_str())
        .map(String::from);
    let pr_number = pr
        .and_then(|p| p.get("number"))
        .and_then(|n| {
            n.as_u64()
                .map(|n| n.to_string())
                .or_else(|| n.as_str().map(String::from))
        })
        .or_else(|| {
            // refs/pull/123/merge
            get("GITHUB_REF").and_then(|r| {
                r.strip_prefix("refs/pull/")
                    .and_then(|rest| rest.split('/').next())
                    .map(String::from)
            })
        });
    let branch = get("GITHUB_HEAD_REF")
        .or_else(|| get("GITHUB_REF_NAME"))
        .or_else(|| {
            get("GITHUB_REF").and_then(|r| r.strip_prefix("refs/heads/").map(String::from))
        });
    CiInfo {
        provider: Some("github_actions".into()),
        commit: pr_head_sha.or_else(|| get("GITHUB_SHA")),
        branch,
        build_url: github_run_url(env),
        pull_request: pr_number,
    }
}

/// The Actions run (and attempt) page of this job.
fn github_run_url(env: &Env) -> Option<String> {
    let get = |name: &str| get(env, name);
    let (server, repo, run) = (
        get("GITHUB_SERVER_URL")?,
        get("GITHUB_REPOSITORY")?,
        get("GITHUB_RUN_ID")?,
    );
    let mut url = format!("{}/{repo}/actions/runs/{run}", server.trim_end_matches('/'));
    if let Some(attempt) = get("GITHUB_RUN_ATTEMPT") {
        url.push_str(&format!("/attempts/{attempt}"));
    }
    Some(url)
}

fn gitlab(env: &Env) -> CiInfo {
    let get = |name: &str| get(env, name);
    CiInfo {
        provider: Some("gitlab_ci".into()),
        commit: get("CI_COMMIT_SHA"),
        branch: get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
            .or_else(|| get("CI_COMMIT_BRANCH"))
            .or_else(|| get("CI_COMMIT_REF_NAME")),
        build_url: get("CI_JOB_URL").or_else(|| get("CI_PIPELINE_URL")),
        pull_request: get("CI_MERGE_REQUEST_IID"),
    }
}

fn jenkins(env: &Env) -> CiInfo {
    let get = |name: &str| get(env, name);
    let branch = get("CHANGE_BRANCH")
        .or_else(|| get("BRANCH_NAME"))
        .or_else(|| {
            get("GIT_BRANCH").map(|b| b.strip_prefix("origin/").map(String::from).unwrap_or(b))
        });
    CiInfo {
        provider: Some("jenkins".into()),
        commit: get("GIT_COMMIT"),
        branch,
        build_url: get("BUILD_URL"),
        pull_request: get("CHANGE_ID"),
    }
}

fn generic(env: &Env) -> CiInfo {
    let get = |name: &str| get(env, name);
    CiInfo {
        provider: Some("generic".into()),
        commit: get("CI_COMMIT_SHA")
            .or_else(|| get("GIT_COMMIT"))
            .or_else(|| get("COMMIT_SHA")),
        branch: get("CI_COMMIT_BRANCH")
            .or_else(|| get("GIT_BRANCH"))
            .or_else(|| get("BRANCH_NAME")),
        build_url: get("BUILD_URL").or_else(|| get("CI_BUILD_URL")),
        pull_request: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded environments (trimmed to what matters plus some noise).
    const GITHUB_PUSH: &[(&str, &str)] = &[
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_HEAD_REF", ""),
        ("GITHUB_SHA", "4f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/support-bot"),
        ("GITHUB_RUN_ID", "9876543210"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("RUNNER_OS", "Linux"),
    ];

    #[test]
    fn one_answer_to_are_we_in_ci() {
        for (pairs, want) in [
            (&[("GITLAB_CI", "false")][..], None),
            (&[("GITLAB_CI", "true")], Some("gitlab_ci")),
            (&[("JENKINS_HOME", "/var/jenkins")], Some("jenkins")),
            (&[("JENKINS_URL", " ")], None),
            (&[("CI", "1")], Some("generic")),
            (&[("CI", "false"), ("GITHUB_ACTIONS", "false")], None),
        ] {
            let env = Env::from_pairs(pairs);
            assert_eq!(provider(&env), want, "{pairs:?}");
            assert_eq!(detect(&env).provider.as_deref(), want, "{pairs:?}");
        }
    }

    #[test]
    fn the_step_files_only_under_github_actions() {
        let files = [
            ("GITHUB_STEP_SUMMARY", "/tmp/summary.md"),
            ("GITHUB_OUTPUT", "/tmp/output"),
        ];
        // Another CI (or act without GITHUB_ACTIONS) leaving the files set
        // must not get a job summary.
        let elsewhere = Env::from_pairs(&[files[0], files[1], ("GITLAB_CI", "true")]);
        assert!(github_files(&elsewhere).is_none());
        let mut pairs = files.to_vec();
        pairs.push(("GITHUB_ACTIONS", "true"));
        let got = github_files(&Env::from_pairs(&pairs)).unwrap();
        assert_eq!(
            got.step_summary.as_deref(),
            Some(std::path::Path::new("/tmp/summary.md"))
        );
        assert_eq!(
            got.output.as_deref(),
            Some(std::path::Path::new("/tmp/output"))
        );
        let bare = github_files(&Env::from_pairs(&[("GITHUB_ACTIONS", "true")])).unwrap();
        assert!(bare.step_summary.is_none() && bare.output.is_none());
    }

    #[test]
    fn github_actions_push() {
        let ci = detect(&Env::from_pairs(GITHUB_PUSH));
        assert_eq!(
            ci,
            CiInfo {
                provider: Some("github_actions".into()),
                commit: Some("4f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e".into()),
                branch: Some("main".into()),
                build_url: Some(
                    "https://github.com/acme/support-bot/actions/runs/9876543210/attempts/1".into()
                ),
                pull_request: None,
            }
        );
    }

    #[test]
    fn github_actions_pull_request_uses_the_head_sha_from_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"action":"synchronize","number":42,"pull_request":{"number":42,
               "head":{"ref":"fix-greeting","sha":"aaaabbbbccccddddeeeeffff0000111122223333"},
               "base":{"ref":"main","sha":"9999"}}}"#,
        )
        .unwrap();
        let mut env: Vec<(&str, &str)> = vec![
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REF", "refs/pull/42/merge"),
            ("GITHUB_REF_NAME", "42/merge"),
            ("GITHUB_HEAD_REF", "fix-greeting"),
            ("GITHUB_SHA", "mergecommitsha000000000000000000000000000"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/support-bot"),
            ("GITHUB_RUN_ID", "1"),
        ];
        let path = event.to_str().unwrap().to_string();
        env.push(("GITHUB_EVENT_PATH", &path));
        let ci = detect(&Env::from_pairs(&env));
        assert_eq!(
            ci.commit.as_deref(),
            Some("aaaabbbbccccddddeeeeffff0000111122223333")
        );
        assert_eq!(ci.branch.as_deref(), Some("fix-greeting"));
        assert_eq!(ci.pull_request.as_deref(), Some("42"));
        assert_eq!(
            ci.build_url.as_deref(),
            Some("https://github.com/acme/support-bot/actions/runs/1")
        );

        // Without a readable event file the PR number still comes from GITHUB_REF.
        env.pop();
        env.push(("GITHUB_EVENT_PATH", "/nonexistent/event.json"));
        let ci = detect(&Env::from_pairs(&env));
        assert_eq!(ci.pull_request.as_deref(), Some("42"));
        assert_eq!(
            ci.commit.as_deref(),
            Some("mergecommitsha000000000000000000000000000")
        );
    }

    #[test]
    fn gitlab_merge_request() {
        let ci = detect(&Env::from_pairs(&[
            ("CI", "true"),
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
            ("CI_MERGE_REQUEST_IID", "17"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature/x"),
            ("CI_JOB_URL", "https://gitlab.com/acme/bot/-/jobs/555"),
            (
                "CI_PIPELINE_URL",
                "https://gitlab.com/acme/bot/-/pipelines/77",
            ),
        ]));
        assert_eq!(
            ci,
            CiInfo {
                provider: Some("gitlab_ci".into()),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                branch: Some("feature/x".into()),
                build_url: Some("https://gitlab.com/acme/bot/-/jobs/555".into()),
                pull_request: Some("17".into()),
            }
        );
    }

    #[test]
    fn gitlab_branch_pipeline() {
        let ci = detect(&Env::from_pairs(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_SHA", "abc"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_PIPELINE_URL", "https://gitlab.example/p/1"),
        ]));
        assert_eq!(ci.branch.as_deref(), Some("main"));
        assert_eq!(ci.build_url.as_deref(), Some("https://gitlab.example/p/1"));
        assert_eq!(ci.pull_request, None);
    }

    #[test]
    fn jenkins_multibranch_change_request() {
        let ci = detect(&Env::from_pairs(&[
            ("JENKINS_URL", "https://jenkins.acme.io/"),
            ("BUILD_URL", "https://jenkins.acme.io/job/bot/job/PR-8/3/"),
            ("GIT_COMMIT", "feedfacefeedfacefeedfacefeedfacefeedface"),
            ("BRANCH_NAME", "PR-8"),
            ("CHANGE_ID", "8"),
            ("CHANGE_BRANCH", "fix-timeouts"),
        ]));
        assert_eq!(
            ci,
            CiInfo {
                provider: Some("jenkins".into()),
                commit: Some("feedfacefeedfacefeedfacefeedfacefeedface".into()),
                branch: Some("fix-timeouts".into()),
                build_url: Some("https://jenkins.acme.io/job/bot/job/PR-8/3/".into()),
                pull_request: Some("8".into()),
            }
        );
        let ci = detect(&Env::from_pairs(&[
            ("JENKINS_HOME", "/var/jenkins_home"),
            ("GIT_BRANCH", "origin/main"),
        ]));
        assert_eq!(ci.branch.as_deref(), Some("main"));
    }

    #[test]
    fn generic_ci_and_none() {
        let ci = detect(&Env::from_pairs(&[
            ("CI", "true"),
            ("GIT_COMMIT", "c0ffee"),
        ]));
        assert_eq!(ci.provider.as_deref(), Some("generic"));
        assert_eq!(ci.commit.as_deref(), Some("c0ffee"));
        let ci = detect(&Env::from_pairs(&[("CI", "false"), ("HOME", "/root")]));
        assert!(ci.provider.is_none());
        assert_eq!(ci, CiInfo::default());
    }
}
