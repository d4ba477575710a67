//! The setting-up commands' arguments: `init` and `completion`.

use std::str::FromStr;

use lexopt::prelude::*;
use lexopt::Parser;

use super::{ctx_of, global, help, next, string, Command, GlobalArgs, Parsed};
use crate::error::Result;

/// `fluxloop init`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct InitArgs {
    pub(crate) scenario: Option<String>,
    /// Overwrite files that exist.
    pub(crate) force: bool,
}

/// `fluxloop completion SHELL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl FromStr for Shell {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bash" => Ok(Shell::Bash),
            "zsh" => Ok(Shell::Zsh),
            "fish" => Ok(Shell::Fish),
            _ => Err(format!(
                "unsupported shell '{s}' (choose from: bash, zsh, fish)"
            )),
        }
    }
}

pub(super) fn parse_init(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::INIT);
    let mut a = InitArgs::default();
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Long("scenario") | Short('s') => a.scenario = Some(string(p, ctx, "--scenario")?),
            Long("force") | Short('f') => a.force = true,
            Short('h') | Long("help") => return Ok(Parsed::Help(help::INIT)),
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    if a.scenario.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(ctx.usage_error("--scenario must not be empty"));
    }
    Ok(Parsed::Run(g, Command::Init(a)))
}

pub(super) fn parse_completion(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::COMPLETION);
    let mut shell = None;
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Value(v) if shell.is_none() => {
                let v = v.to_string_lossy();
                shell = Some(v.parse::<Shell>().map_err(|e| ctx.usage_error(e))?);
            }
            Short('h') | Long("help") => return Ok(Parsed::Help(help::COMPLETION)),
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    let shell =
        shell.ok_or_else(|| ctx.usage_error("missing argument SHELL (bash, zsh or fish)"))?;
    Ok(Parsed::Run(g, Command::Completion(shell)))
}
