//! `fluxloop`: the FluxLoop command-line client for CI.
//!
//! [`run`] parses the command line, resolves every setting once, builds the
//! [`ctx::Ctx`], runs one
//! command, prints its report or its error once, and returns the exit code
//! of CLI.md §6.

mod api;
mod atomic_file;
mod auth;
mod ci;
mod cli;
mod commands;
mod config;
mod ctx;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod job;
#[cfg(test)]
mod limits_tests;
mod output;
mod pull_spool;
mod pulled;
mod result_dir;
mod results;
mod runner;
mod secret;
mod signals;
mod upload;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::Parsed;
use crate::config::settings::{Inputs, Settings};
use crate::config::Env;
use crate::ctx::Ctx;
use crate::error::{code, Error};
use crate::output::Output;

/// The version line: version and target, so a CI log shows which build ran.
pub fn version() -> String {
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "gnu") {
        "gnu"
    } else {
        ""
    };
    let os = std::env::consts::OS;
    let vendor = if os == "macos" { "apple" } else { "unknown" };
    let os = if os == "macos" { "darwin" } else { os };
    let mut target = format!("{}-{vendor}-{os}", std::env::consts::ARCH);
    if !env.is_empty() {
        target.push('-');
        target.push_str(env);
    }
    format!("fluxloop {} ({target})", env!("CARGO_PKG_VERSION"))
}

/// Runs the CLI with `args` (without the program name) and returns the exit code.
pub fn run<I>(args: I) -> ExitCode
where
    I: IntoIterator<Item = OsString>,
{
    ExitCode::from(run_code(args))
}

fn run_code<I>(args: I) -> u8
where
    I: IntoIterator<Item = OsString>,
{
    let env = Env::from_process();
    let args: Vec<OsString> = args.into_iter().collect();
    // Seen before parsing, so that help, the version and usage errors are
    // JSON too; nothing after `--` (the agent's own arguments) counts.
    let json = args
        .iter()
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--json");
    let parsed = cli::parse(args);
    let (globals, command) = match parsed {
        Ok(Parsed::Help(text)) if json => {
            return print_json(&serde_json::json!({"help": cli::help::full(text)}))
        }
        Ok(Parsed::Help(text)) => return print_plain(&cli::help::full(text)),
        Ok(Parsed::Version) if json => return print_json(&version_json()),
        Ok(Parsed::Version) => return print_plain(&version()),
        Ok(Parsed::Run(g, c)) => (g, c),
        Err(e) => {
            let out = Output::new(json, false, 0, output::color_choice(None, &env), false);
            out.error(&e);
            return e.exit_code();
        }
    };
    // The one CI detector decides the GitHub renderer too.
    let github = ci::provider(&env) == Some("github_actions");
    let out = Arc::new(Output::new(
        globals.json,
        globals.quiet,
        globals.verbose,
        output::color_choice(globals.color, &env),
        github,
    ));
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            let err = Error::io("read the working directory", ".", e);
            out.error(&err);
            return err.exit_code();
        }
    };
    // Every setting, resolved once before the command does anything.
    let flags = cli::setting_flags(&globals, &command);
    let settings = Settings::resolve(&Inputs {
        env: &env,
        cwd: &cwd,
        flags: &flags,
        config_flag: globals.config.as_deref(),
    });
    let ctx = Ctx::new(globals, env, cwd, Arc::clone(&out), settings);
    match commands::run(&ctx, command) {
        Ok(outcome) => match out.report(outcome.report.as_ref()) {
            Ok(()) => outcome.code,
            // A closed pipe (`fluxloop test | head -1`) loses only the
            // printing: the command's own code (10 for a failed run) stands.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => outcome.code,
            Err(_) => code::GENERAL,
        },
        Err(e) => {
            out.error(&e);
            match e {
                // 130 for SIGINT, 143 for SIGTERM (CLI.md §6), as shells report it.
                Error::Interrupted => signals::exit_code().unwrap_or_else(|| e.exit_code()),
                _ => e.exit_code(),
            }
        }
    }
}

/// `--version --json`.
fn version_json() -> serde_json::Value {
    let line = version();
    let target = line
        .rsplit_once(" (")
        .map(|(_, t)| t.trim_end_matches(')').to_string())
        .unwrap_or_default();
    serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "target": target})
}

/// One JSON document on stdout, with the `schema_version` every one carries.
fn print_json(doc: &serde_json::Value) -> u8 {
    print_plain(&output::json_document(doc))
}

/// Prints help or the version; a closed pipe (`fluxloop --help | head -5`) is
/// not a failure.
fn print_plain(text: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => code::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code::SUCCESS,
        Err(_) => code::GENERAL,
    }
}
