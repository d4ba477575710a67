//! One module per command group; each returns a report and never prints.

pub(crate) mod apikeys;
pub(crate) mod auth;
pub(crate) mod completion;
pub(crate) mod config;
pub(crate) mod doctor;
pub(crate) mod init;
pub(crate) mod report;
pub(crate) mod sync;
pub(crate) mod test;

use crate::cli::Command;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::output::Outcome;

pub(crate) fn run(ctx: &Ctx, command: Command) -> Result<Outcome> {
    match command {
        Command::Auth(c) => auth::run(ctx, c),
        Command::Apikeys(c) => apikeys::run(ctx, c),
        Command::Config(c) => config::run(ctx, c),
        Command::Sync(c) => sync::run(ctx, c),
        Command::Test(a) => test::run(ctx, a),
        Command::Report(a) => report::run(ctx, a),
        Command::Init(a) => init::run(ctx, a),
        Command::Doctor => doctor::run(ctx),
        Command::Completion(shell) => Ok(completion::run(shell)),
        Command::Man => Ok(completion::man()),
    }
}
