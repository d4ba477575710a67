//! `test --shard`: which shard this process runs, and the note of a shard
//! whose part of the runs is empty.

use serde::Serialize;

use std::path::Path;

use crate::auth::login::Session;
use crate::ci::{self, fanout};
use crate::config::project::limits::{Shard, ShardSpec};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;
use crate::{pulled, results, upload};

/// The shard given (`--shard`, else `test.shard`), `auto` read from the CI.
pub(super) fn resolve(ctx: &Ctx, spec: Option<ShardSpec>) -> Result<Option<Shard>> {
    match spec {
        None => Ok(None),
        Some(ShardSpec::Fixed(s)) => Ok(Some(s)),
        Some(ShardSpec::Auto) => fanout::shard_from_env(&ctx.env).map(Some),
    }
}

/// A shard with no runs: more shards than runs is not an error, as the CI
/// fixes the number of workers before anyone knows the number of inputs.
#[derive(Serialize)]
pub(crate) struct EmptyShard {
    pub(crate) scenario: String,
    pub(crate) shard: Shard,
    /// The runs split over all shards.
    pub(crate) total_runs: usize,
    pub(crate) runs: Vec<()>,
    /// The batch this shard reported to as done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) run_batch_id: Option<String>,
}

impl EmptyShard {
    pub(super) fn new(scenario: &str, shard: Shard, total_runs: usize) -> EmptyShard {
        EmptyShard {
            scenario: scenario.to_string(),
            shard,
            total_runs,
            runs: Vec::new(),
            run_batch_id: None,
        }
    }
}

/// An empty shard with upload on still tells its batch it is done: else
/// the batch would wait for it for ever.
pub(super) fn report_empty(
    ctx: &Ctx,
    session: &Session,
    root: &Path,
    scenario: &str,
    given_key: Option<&str>,
    (shard, runs): (Shard, usize),
) -> Result<Outcome> {
    let mut note = EmptyShard::new(scenario, shard, runs);
    let Some(key) = fanout::batch_key(&ctx.env, given_key, scenario, true)? else {
        return Ok(Outcome::ok(note));
    };
    let pulled_dir = pulled::pulled_dir(root, scenario);
    let meta = pulled::read_meta(&pulled_dir)?;
    let bundle = meta
        .as_ref()
        .and_then(pulled::bundle_version_id)
        .ok_or_else(|| {
            Error::config(
                format!(
                    "{} records no bundle version, so the shard cannot report to its batch",
                    pulled_dir.join(pulled::SYNC_META).display()
                ),
                Some("run `fluxloop sync pull --yes`, or pass --skip-upload".into()),
            )
        })?;
    let now = results::rfc3339(time::OffsetDateTime::now_utc());
    let ci = ci::detect(&ctx.env);
    let info = upload::BatchInfo {
        bundle_version_id: &bundle,
        started_at: &now,
        completed_at: &now,
        ci: &ci,
        batch_key: Some(&key),
        shard: Some(shard),
    };
    note.run_batch_id = Some(upload::report_empty_shard(&session.client, &info)?);
    Ok(Outcome::ok(note))
}
