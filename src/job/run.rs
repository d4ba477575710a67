//! The run stage: every run of the plan through the runner, each record
//! appended to `trace_summary.jsonl` the moment it finishes (CLI.md §5).

use std::path::Path;

use crate::error::{Error, Result};
use crate::results::{self, RunInfo, Tally, TraceRecord, TraceWriter};
use crate::runner::{self, Plan, Slot};

/// Hears each finished run, with the counts so far.
pub(crate) trait RunProgress {
    fn finished(&mut self, record: &TraceRecord, tally: &Tally);
}

/// What the run stage did.
pub(crate) struct RunReport {
    /// The records' counts; `skipped` is the runs never started.
    pub(crate) tally: Tally,
    /// The runs never started (`--max-failures`, or an interruption).
    pub(crate) unrun: Vec<Slot>,
    /// Why the run ended early, when it did (a signal: [`Error::Interrupted`]).
    pub(crate) stopped: Option<Error>,
    /// Holds the result directory's lock until the report stage is done.
    pub(crate) writer: TraceWriter,
}

impl RunReport {
    /// Ended by SIGINT/SIGTERM.
    pub(crate) fn interrupted(&self) -> bool {
        matches!(self.stopped, Some(Error::Interrupted))
    }
}

/// Runs `plan`, recording into `result_dir`. A first summary, marked
/// incomplete, is written while the lock is held: it records the bundle,
/// so the runs of a killed `test` can still be uploaded.
pub(crate) fn run(
    plan: &Plan<'_>,
    result_dir: &Path,
    info: &RunInfo<'_>,
    progress: &mut dyn RunProgress,
) -> Result<RunReport> {
    let mut writer = TraceWriter::create(result_dir)?;
    results::write_summary(result_dir, info, &Tally::default())?;
    let mut tally = Tally::default();
    let outcome = runner::run(plan, &mut |finished| {
        let record = TraceRecord::new(&finished, &plan.inputs[finished.input]);
        writer.append(&record)?;
        tally.add(&record);
        progress.finished(&record, &tally);
        Ok(())
    });
    let (unrun, stopped) = match outcome {
        Ok(unrun) => (unrun, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    tally.skipped = unrun.len();
    Ok(RunReport {
        tally,
        unrun,
        stopped,
        writer,
    })
}
