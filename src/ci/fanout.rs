//! The CI's own parallelism: which shard of a fanned-out job we are
//! (`--shard auto`), and the batch key every shard of one build shares.

use crate::config::project::limits::{self, Shard};
use crate::config::Env;
use crate::error::{Error, Result};

/// Where `--shard auto` looks, in order: (index variable, total variable,
/// whether the index counts from 0).
const SHARD_VARS: &[(&str, &str, bool)] = &[
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", false),
    (
        "BUILDKITE_PARALLEL_JOB",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        true,
    ),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
    ("JOB_COMPLETION_INDEX", "FLUXLOOP_SHARD_TOTAL", true),
];

const AUTO_HINT: &str = "pass --shard I/N, or set FLUXLOOP_SHARD=I/N (GitLab parallel:, Buildkite and CircleCI parallelism, and Kubernetes Indexed Jobs with FLUXLOOP_SHARD_TOTAL are read by themselves)";

/// `--shard auto`: the shard the CI's variables name.
pub(crate) fn shard_from_env(env: &Env) -> Result<Shard> {
    for &(index_var, total_var, zero_based) in SHARD_VARS {
        let Some(index) = env.get(index_var)? else {
            continue;
        };
        let Some(total) = env.get(total_var)? else {
            return Err(Error::config(
                format!("--shard auto: {index_var} is set but {total_var} is not"),
                Some(AUTO_HINT.into()),
            ));
        };
        let bad = |why: String| {
            Error::config(
                format!("--shard auto: {index_var}={index}, {total_var}={total}: {why}"),
                Some(AUTO_HINT.into()),
            )
        };
        let whole = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{v:?} is not a whole number"))
        };
        let (i, n) = (whole(index).map_err(bad)?, whole(total).map_err(bad)?);
        if zero_based && n > 0 && i >= n {
            return Err(bad(format!(
                "{index_var} counts from 0, so it must be below {n}"
            )));
        }
        let i = if zero_based { i.saturating_add(1) } else { i };
        return limits::shard_of(i, n).map_err(bad);
    }
    if let Some(v) = env.get("FLUXLOOP_SHARD")? {
        return match limits::shard(v) {
            Ok(limits::ShardSpec::Fixed(s)) => Ok(s),
            Ok(limits::ShardSpec::Auto) => Err(Error::config(
                "FLUXLOOP_SHARD=auto: with --shard auto, FLUXLOOP_SHARD must name the shard",
                Some(AUTO_HINT.into()),
            )),
            Err(why) => Err(Error::config(
                format!("invalid FLUXLOOP_SHARD {v:?}: {why}"),
                Some(AUTO_HINT.into()),
            )),
        };
    }
    Err(Error::config(
        "--shard auto: no CI shard variables are set (CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB, CIRCLE_NODE_INDEX, JOB_COMPLETION_INDEX, FLUXLOOP_SHARD)",
        Some(AUTO_HINT.into()),
    ))
}

/// Where a batch key comes from, in order after `--batch-key` and
/// `FLUXLOOP_BATCH_KEY`: the variables naming one build of each CI.
const BATCH_VARS: &[(&str, &[&str])] = &[
    ("github", &["GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"]),
    ("gitlab", &["CI_PIPELINE_ID"]),
    ("jenkins", &["BUILD_TAG"]),
    ("buildkite", &["BUILDKITE_BUILD_ID"]),
    ("circleci", &["CIRCLE_WORKFLOW_ID"]),
];

/// The key of the run batch every shard of this build appends to, always
/// with the scenario, so two scenarios of one build are two batches. It is
/// derived from the CI only for a `sharded` run: unsharded jobs of one
/// build (a matrix over models, say) must stay batches of their own.
/// `given` is the `batch_key` setting (`--batch-key`, `FLUXLOOP_BATCH_KEY`).
pub(crate) fn batch_key(
    env: &Env,
    given: Option<&str>,
    scenario: &str,
    sharded: bool,
) -> Result<Option<String>> {
    let base = match given.map(|k| k.trim().to_string()) {
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) => {
            return Err(Error::config(
                format!("batch key {k:?}: must be 1 to 200 printable characters"),
                Some(
                    "pass --batch-key with the build's id, e.g. --batch-key \"$CI_PIPELINE_ID\""
                        .into(),
                ),
            ))
        }
        Some(k) => Some(k),
        None if sharded => derived(env)?,
        None => None,
    };
    Ok(base.map(|b| format!("{b}:{scenario}")))
}

fn derived(env: &Env) -> Result<Option<String>> {
    for &(ci, vars) in BATCH_VARS {
        let mut parts = Vec::new();
        for v in vars {
            match env.get(v)? {
                Some(x) => parts.push(x.trim().to_string()),
                None => break,
            }
        }
        // GitHub needs both: a rerun of the workflow is a new batch.
        if parts.len() == vars.len() {
            return Ok(Some(format!("{ci}:{}", parts.join("."))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(pairs: &[(&str, &str)]) -> std::result::Result<String, String> {
        shard_from_env(&Env::from_pairs(pairs))
            .map(|s| s.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn auto_reads_each_ci_and_counts_from_one() {
        assert_eq!(
            shard(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "4")]),
            Ok("2/4".into())
        );
        assert_eq!(
            shard(&[
                ("BUILDKITE_PARALLEL_JOB", "0"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "3")
            ]),
            Ok("1/3".into())
        );
        assert_eq!(
            shard(&[("CIRCLE_NODE_INDEX", "3"), ("CIRCLE_NODE_TOTAL", "4")]),
            Ok("4/4".into())
        );
        assert_eq!(
            shard(&[("JOB_COMPLETION_INDEX", "1"), ("FLUXLOOP_SHARD_TOTAL", "4")]),
            Ok("2/4".into())
        );
        assert_eq!(shard(&[("FLUXLOOP_SHARD", "3/5")]), Ok("3/5".into()));
        // GitLab's index is 1-based: 0 is out of range, as is index 4 of 4 on Kubernetes.
        assert!(shard(&[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "4")]).is_err());
        assert!(shard(&[("JOB_COMPLETION_INDEX", "4"), ("FLUXLOOP_SHARD_TOTAL", "4")]).is_err());
        assert_eq!(
            shard(&[("JOB_COMPLETION_INDEX", "1")]),
            Err("--shard auto: JOB_COMPLETION_INDEX is set but FLUXLOOP_SHARD_TOTAL is not".into())
        );
        assert!(shard(&[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "4")]).is_err());
        assert!(shard(&[]).is_err());
        assert!(shard(&[("FLUXLOOP_SHARD", "auto")]).is_err());
    }

    #[test]
    fn batch_key_comes_from_the_flag_env_or_ci_with_the_scenario() {
        let key =
            |pairs: &[(&str, &str)], given| batch_key(&Env::from_pairs(pairs), given, "s1", true);
        assert_eq!(key(&[], None).unwrap(), None);
        assert_eq!(
            key(&[("CI_PIPELINE_ID", "77")], Some("k")).unwrap(),
            Some("k:s1".into())
        );
        // FLUXLOOP_BATCH_KEY reaches here as the batch_key setting.
        let env = Env::from_pairs(&[("FLUXLOOP_BATCH_KEY", "b"), ("CI_PIPELINE_ID", "77")]);
        let setting = crate::config::settings::Settings::of_env(&env)
            .raw("batch_key")
            .unwrap()
            .map(|v| v.val);
        assert_eq!(
            batch_key(&env, setting.as_deref(), "s1", true).unwrap(),
            Some("b:s1".into())
        );
        assert_eq!(
            key(&[("CI_PIPELINE_ID", "77")], None).unwrap(),
            Some("gitlab:77:s1".into())
        );
        assert_eq!(
            key(&[("GITHUB_RUN_ID", "9"), ("GITHUB_RUN_ATTEMPT", "2")], None).unwrap(),
            Some("github:9.2:s1".into())
        );
        // Without the attempt a GitHub rerun would append to the first attempt's batch.
        assert_eq!(key(&[("GITHUB_RUN_ID", "9")], None).unwrap(), None);
        assert_eq!(
            key(&[("BUILD_TAG", "jenkins-app-12")], None).unwrap(),
            Some("jenkins:jenkins-app-12:s1".into())
        );
        assert_eq!(
            key(&[("BUILDKITE_BUILD_ID", "u")], None).unwrap(),
            Some("buildkite:u:s1".into())
        );
        assert_eq!(
            key(&[("CIRCLE_WORKFLOW_ID", "w")], None).unwrap(),
            Some("circleci:w:s1".into())
        );
        assert!(key(&[], Some(" ")).is_err());
        let unsharded = |pairs: &[(&str, &str)], given| {
            batch_key(&Env::from_pairs(pairs), given, "s1", false).unwrap()
        };
        assert_eq!(unsharded(&[("CI_PIPELINE_ID", "77")], None), None);
        assert_eq!(
            unsharded(&[("CI_PIPELINE_ID", "77")], Some("k")),
            Some("k:s1".into())
        );
    }
}
