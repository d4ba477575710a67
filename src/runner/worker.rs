//! One worker of [`super::run`]: claims runs, paces their starts
//! (`--rate`), retries failures (`--retries`), and stops claiming once
//! `--max-failures` runs failed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use time::OffsetDateTime;

use super::{pace, process, request_line, stopping, FailedAttempt, Finished, Plan, Slot};

/// What the workers share.
#[derive(Clone, Copy)]
pub(super) struct Shared<'s, 'a> {
    pub(super) plan: &'s Plan<'a>,
    pub(super) next: &'s AtomicUsize,
    pub(super) abort: &'s AtomicBool,
    pub(super) failures: &'s AtomicUsize,
    pub(super) pacer: &'s pace::Pacer,
}

impl Shared<'_, '_> {
    /// Whether no new run may start.
    fn halted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
            || stopping()
            || self
                .plan
                .max_failures
                .is_some_and(|m| self.failures.load(Ordering::SeqCst) >= m)
    }

    /// One worker: claims runs until none is left or the run halts.
    pub(super) fn work(self, total: usize, tx: &mpsc::Sender<Finished>) {
        loop {
            if self.halted() {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= total {
                return;
            }
            let Some(finished) = self.run_slot(self.plan.slot(i)) else {
                return;
            };
            if finished.verdict().is_err() {
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
            if tx.send(finished).is_err() {
                return;
            }
        }
    }

    /// Runs one slot, retrying a failure up to `retries` times; `None`
    /// when the whole run is stopping.
    fn run_slot(&self, slot: Slot) -> Option<Finished> {
        let plan = self.plan;
        let run_id = uuid::Uuid::new_v4().to_string();
        let line = request_line(
            &run_id,
            &plan.inputs[slot.input],
            slot.iteration,
            &plan.scenario,
        );
        let mut failed_attempts = Vec::new();
        loop {
            if !self
                .pacer
                .wait_turn(&|| self.abort.load(Ordering::SeqCst) || stopping())
            {
                return None;
            }
            let started_at = OffsetDateTime::now_utc();
            let done = process::run_one(&plan.agent, &line, plan.reaper);
            if done.cancelled {
                return None;
            }
            let finished = Finished {
                run_id: run_id.clone(),
                iteration: slot.iteration,
                input: slot.input,
                started_at,
                elapsed: done.elapsed,
                outcome: done.outcome,
                reply: done.reply,
                stdout_tail: done.stdout_tail,
                stderr_tail: done.stderr_tail,
                attempts: failed_attempts.len() as u32 + 1,
                failed_attempts: Vec::new(),
            };
            match finished.verdict() {
                Err(message)
                    if failed_attempts.len() < plan.retries as usize
                        && !stopping()
                        && !self.abort.load(Ordering::SeqCst) =>
                {
                    // The agent's own output when it sent a result, else what it printed.
                    let output = finished.reply.map(|r| r.output).filter(|o| !o.is_empty());
                    failed_attempts.push(FailedAttempt {
                        message,
                        stdout_tail: output.unwrap_or(finished.stdout_tail),
                        stderr_tail: finished.stderr_tail,
                    });
                }
                _ => {
                    return Some(Finished {
                        failed_attempts,
                        ..finished
                    })
                }
            }
        }
    }
}
