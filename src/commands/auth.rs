//! `auth login/refresh/logout/status`.

use crate::cli::AuthCommand;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

pub(crate) fn run(_ctx: &Ctx, _cmd: AuthCommand) -> Result<Outcome> {
    Err(Error::Unsupported { what: "auth: not yet implemented".into(), hint: None })
}
