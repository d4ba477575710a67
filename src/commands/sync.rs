//! `sync pull` and `sync upload`.

use crate::cli::SyncCommand;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

pub(crate) fn run(_ctx: &Ctx, cmd: SyncCommand) -> Result<Outcome> {
    let name = match cmd {
        SyncCommand::Pull(_) => "sync pull",
        SyncCommand::Upload(_) => "sync upload",
    };
    Err(Error::Unsupported {
        what: format!("`fluxloop {name}` is not yet implemented"),
        hint: None,
    })
}
