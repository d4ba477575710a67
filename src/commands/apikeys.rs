//! `apikeys create/list/info/revoke`.

use crate::cli::ApikeysCommand;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

pub(crate) fn run(_ctx: &Ctx, _cmd: ApikeysCommand) -> Result<Outcome> {
    Err(Error::Unsupported { what: "apikeys: not yet implemented".into(), hint: None })
}
