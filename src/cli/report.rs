//! `report`: the fan-in step of a sharded job (issue 17).

use std::path::PathBuf;

use lexopt::prelude::*;
use lexopt::Parser;

use super::{ctx_of, global, help, next, string, Command, GlobalArgs, Parsed};
use crate::error::Result;

/// How long `--wait` without a value waits for the shards.
pub(crate) const DEFAULT_WAIT_SECS: f64 = 600.0;
/// Longest `--wait`: a day.
const MAX_WAIT_SECS: f64 = 86_400.0;

#[derive(Debug, Default)]
pub(crate) struct ReportArgs {
    pub(crate) scenario: Option<String>,
    pub(crate) batch_key: Option<String>,
    pub(crate) run_batch: Option<String>,
    /// Seconds to wait for every shard; `None`: do not wait.
    pub(crate) wait: Option<f64>,
    pub(crate) junit: Option<PathBuf>,
    /// `--merge DIR…`: result directories to merge offline.
    pub(crate) merge: Vec<PathBuf>,
}

pub(super) fn parse_report(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::REPORT);
    let mut a = ReportArgs::default();
    let mut merging = false;
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(help::REPORT)),
            Short('s') | Long("scenario") => a.scenario = Some(string(p, ctx, "--scenario")?),
            Long("batch-key") => a.batch_key = Some(string(p, ctx, "--batch-key")?),
            Long("run-batch") => a.run_batch = Some(string(p, ctx, "--run-batch")?),
            Long("merge") => {
                merging = true;
                a.merge.push(PathBuf::from(string(p, ctx, "--merge")?));
            }
            Value(v) if merging => a.merge.push(PathBuf::from(v)),
            Long("junit") => a.junit = Some(PathBuf::from(string(p, ctx, "--junit")?)),
            Long("wait") => {
                // `--wait`, `--wait=SECS` or `--wait SECS`: a number right
                // after it is its value.
                let value = match p.optional_value() {
                    Some(v) => Some(v.to_string_lossy().into_owned()),
                    None => p.raw_args().ok().and_then(|mut raw| {
                        let v = raw.peek()?.to_str()?.to_string();
                        v.parse::<f64>().is_ok().then(|| {
                            raw.next();
                            v
                        })
                    }),
                };
                let secs = match value {
                    None => DEFAULT_WAIT_SECS,
                    Some(v) => match v.parse::<f64>() {
                        Ok(s) if (0.0..=MAX_WAIT_SECS).contains(&s) => s,
                        _ => {
                            return Err(ctx.usage_error(format!(
                                "invalid value '{v}' for --wait: must be a number of seconds from 0 to {MAX_WAIT_SECS}"
                            )))
                        }
                    },
                };
                a.wait = Some(secs);
            }
            Value(v) => {
                return Err(
                    ctx.usage_error(format!("unexpected argument '{}'", v.to_string_lossy()))
                )
            }
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    if merging
        && (a.batch_key.is_some() || a.run_batch.is_some() || a.wait.is_some() || a.junit.is_some())
    {
        return Err(ctx.usage_error(
            "--merge works offline on result directories; --batch-key, --run-batch, --wait and --junit are for the platform's batch",
        ));
    }
    if a.batch_key.is_some() && a.run_batch.is_some() {
        return Err(ctx.usage_error("--batch-key and --run-batch name the batch twice; give one"));
    }
    Ok(Parsed::Run(g, Command::Report(a)))
}
