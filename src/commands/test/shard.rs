//! `test --shard`: which shard this process runs, and the note of a shard
//! whose part of the runs is empty.

use serde::Serialize;

use crate::ci::fanout;
use crate::config::project::limits::{Shard, ShardSpec};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::output::{Human, Style};

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
pub(super) struct EmptyShard {
    scenario: String,
    shard: Shard,
    /// The runs split over all shards.
    total_runs: usize,
    runs: Vec<()>,
}

impl EmptyShard {
    pub(super) fn new(scenario: &str, shard: Shard, total_runs: usize) -> EmptyShard {
        EmptyShard {
            scenario: scenario.to_string(),
            shard,
            total_runs,
            runs: Vec::new(),
        }
    }
}

impl Human for EmptyShard {
    fn human(&self, _style: &Style) -> String {
        format!(
            "Nothing to run: shard {} of {} has no runs ({} run{} split over {} shards)\n",
            self.shard,
            self.scenario,
            self.total_runs,
            if self.total_runs == 1 { "" } else { "s" },
            self.shard.total
        )
    }
}
