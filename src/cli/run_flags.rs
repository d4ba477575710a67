//! The `test` flags of issue 18 (retries, thresholds, selection, pacing),
//! checked by the same `config::project::limits` validators as their
//! `test:` keys in fluxloop.yaml.

use lexopt::prelude::*;
use lexopt::Parser;

use super::{string, Ctx};
use crate::error::Result;

/// `test` flags that choose, retry, pace and judge the runs.
#[derive(Debug, Default)]
pub(crate) struct RunFlags {
    pub(crate) retries: Option<u32>,
    pub(crate) fail_under: Option<f64>,
    pub(crate) max_failures: Option<usize>,
    pub(crate) rate: Option<crate::config::project::limits::Rate>,
    /// `--input ID`, repeatable: any of them.
    pub(crate) inputs: Vec<String>,
    pub(crate) persona: Option<String>,
    pub(crate) grep: Option<String>,
    pub(crate) last_failed: bool,
    pub(crate) list: bool,
    pub(crate) dry_run: bool,
    pub(crate) shard: Option<crate::config::project::limits::ShardSpec>,
    pub(crate) batch_key: Option<String>,
}

/// The flags of [`RunFlags`]; false when `arg` is none of them. Values
/// go through the same validators as `fluxloop.yaml`'s `test:` keys.
pub(super) fn run_flag(
    arg: &lexopt::Arg<'_>,
    p: &mut Parser,
    ctx: Ctx,
    f: &mut RunFlags,
) -> Result<bool> {
    use crate::config::project::limits;
    let Long(name) = arg else {
        return Ok(false);
    };
    let flag = format!("--{name}");
    let checked = |v: String, r: std::result::Result<(), String>| {
        r.map_err(|why| ctx.usage_error(format!("invalid value '{v}' for {flag}: {why}")))
    };
    let whole = |p: &mut Parser| -> Result<(String, std::result::Result<u64, String>)> {
        let v = string(p, ctx, &flag)?;
        let n = v
            .parse::<u64>()
            .map_err(|_| "must be a whole number".to_string());
        Ok((v, n))
    };
    match *name {
        "retries" => {
            let (v, n) = whole(p)?;
            let n = n.and_then(limits::run_retries);
            f.retries = n.clone().ok();
            checked(v, n.map(|_| ()))?;
        }
        "max-failures" => {
            let (v, n) = whole(p)?;
            let n = n.and_then(limits::max_failures);
            f.max_failures = n.clone().ok();
            checked(v, n.map(|_| ()))?;
        }
        "fail-under" => {
            let v = string(p, ctx, &flag)?;
            let r = v
                .parse::<f64>()
                .map_err(|_| "must be a number from 0 to 1 (e.g. 0.95)".to_string())
                .and_then(limits::pass_rate);
            f.fail_under = r.clone().ok();
            checked(v, r.map(|_| ()))?;
        }
        "rate" => {
            let v = string(p, ctx, &flag)?;
            let r = limits::rate(&v);
            f.rate = r.clone().ok();
            checked(v, r.map(|_| ()))?;
        }
        "shard" => {
            let v = string(p, ctx, &flag)?;
            let r = limits::shard(&v);
            f.shard = r.clone().ok();
            checked(v, r.map(|_| ()))?;
        }
        "batch-key" => f.batch_key = Some(string(p, ctx, &flag)?),
        "input" => f.inputs.push(string(p, ctx, &flag)?),
        "persona" => f.persona = Some(string(p, ctx, &flag)?),
        "grep" => f.grep = Some(string(p, ctx, &flag)?),
        "last-failed" => f.last_failed = true,
        "list" => f.list = true,
        "dry-run" => f.dry_run = true,
        _ => return Ok(false),
    }
    Ok(true)
}
