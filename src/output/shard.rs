//! How a `test --shard` with no runs is shown.

use crate::commands::test::shard::EmptyShard;
use crate::output::{Human, Style};

impl Human for EmptyShard {
    fn human(&self, _style: &Style) -> String {
        format!(
            "Nothing to run: shard {} of {} has no runs ({} run{} split over {} shards)\n",
            self.shard,
            self.scenario,
            self.total_runs,
            if self.total_runs == 1 { "" } else { "s" },
            self.shard.total
        ) + &self
            .run_batch_id
            .as_ref()
            .map(|id| format!("Reported to run batch {id} as done\n"))
            .unwrap_or_default()
    }
}
