//! `test`: run the agent over the pulled inputs.

use crate::cli::TestArgs;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

pub(crate) fn run(_ctx: &Ctx, _args: TestArgs) -> Result<Outcome> {
    Err(Error::Unsupported {
        what: "`fluxloop test` is not yet implemented".into(),
        hint: None,
    })
}
