//! The command line: lexopt turns `argv` into one typed command tree.
//!
//! `*Args` structs hold only what was typed; no environment, no files. Global
//! flags are accepted before or after the subcommand, so each subcommand's loop
//! first offers every argument to [`global`].

pub(crate) mod help;
mod report;
mod setup;
pub(crate) mod table;

pub(crate) use report::ReportArgs;
pub(crate) use setup::{InitArgs, Shell};

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

use lexopt::prelude::*;
use lexopt::Parser;

use crate::error::{Error, Result};

mod run_flags;
use run_flags::run_flag;
pub(crate) use run_flags::RunFlags;

/// Flags every command accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct GlobalArgs {
    pub(crate) profile: Option<String>,
    pub(crate) api_key: Option<String>,
    /// `--oidc` (true) or `--no-oidc` (false): keyless CI required or off.
    pub(crate) oidc: Option<bool>,
    pub(crate) endpoint: Option<String>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) yes: bool,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) verbose: u8,
    /// `--no-color` is `--color never`.
    pub(crate) color: Option<ColorChoice>,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl FromStr for ColorChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(ColorChoice::Auto),
            "always" => Ok(ColorChoice::Always),
            "never" => Ok(ColorChoice::Never),
            _ => Err(format!(
                "invalid value '{s}' (choose from: auto, always, never)"
            )),
        }
    }
}

/// What the command line asks for.
// Built once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Print this help text and exit 0.
    Help(&'static str),
    /// Print the version and exit 0.
    Version,
    Run(GlobalArgs, Command),
}

#[derive(Debug)]
pub(crate) enum Command {
    Auth(AuthCommand),
    Apikeys(ApikeysCommand),
    Config(ConfigCommand),
    Sync(SyncCommand),
    Test(TestArgs),
    Report(ReportArgs),
    Init(InitArgs),
    Doctor,
    Completion(Shell),
    /// `fluxloop help --man`.
    Man,
}

#[derive(Debug)]
pub(crate) enum AuthCommand {
    Login { no_browser: bool, force: bool },
    Refresh,
    Logout { all: bool },
    Status,
    Token,
}

/// `apikeys create` scopes (PLATFORM-API §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Read,
    Write,
    ReadWrite,
    Admin,
}

impl Scope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::ReadWrite => "read-write",
            Scope::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "read-write" | "readwrite" | "rw" => Ok(Scope::ReadWrite),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!(
                "invalid scope '{s}' (choose from: read, write, read-write, admin)"
            )),
        }
    }
}

/// `apikeys create --type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    User,
    ServiceAccount,
}

impl KeyType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyType::User => "user",
            KeyType::ServiceAccount => "service-account",
        }
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "user" => Ok(KeyType::User),
            "service-account" | "service_account" | "sa" => Ok(KeyType::ServiceAccount),
            _ => Err(format!(
                "invalid key type '{s}' (choose from: user, service-account)"
            )),
        }
    }
}

#[derive(Debug)]
pub(crate) enum ApikeysCommand {
    Create {
        name: Option<String>,
        key_type: KeyType,
        scope: Scope,
        project_id: Option<String>,
        expires_in_days: Option<u32>,
    },
    List {
        project_id: Option<String>,
        /// Revoked keys too.
        all: bool,
    },
    /// `None`: the key in effect.
    Info {
        key: Option<String>,
    },
    Revoke {
        target: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConfigCommand {
    Set { key: String, value: String },
    Unset { key: String },
    Get { key: String },
    List,
}

#[derive(Debug)]
pub(crate) enum SyncCommand {
    Pull(PullArgs),
    Upload(UploadArgs),
}

#[derive(Debug, Default)]
pub(crate) struct PullArgs {
    pub(crate) scenario: Option<String>,
    pub(crate) bundle_version_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) keep_local: bool,
}

#[derive(Debug, Default)]
pub(crate) struct UploadArgs {
    pub(crate) scenario: Option<String>,
    pub(crate) result_dir: Option<PathBuf>,
    /// Upload the valid records and skip the lines that are not.
    pub(crate) skip_invalid: bool,
}

#[derive(Debug, Default)]
pub(crate) struct TestArgs {
    pub(crate) scenario: Option<String>,
    pub(crate) iterations: Option<u32>,
    pub(crate) parallel: Option<u32>,
    pub(crate) timeout: Option<f64>,
    pub(crate) skip_pull: bool,
    /// The pull keeps locally edited pulled files.
    pub(crate) keep_local: bool,
    /// `--skip-upload` (false) / `--no-skip-upload` (true); last wins.
    pub(crate) upload: Option<bool>,
    pub(crate) junit: Option<PathBuf>,
    /// The agent command after `--`, overriding `runner.command`.
    pub(crate) command: Vec<String>,
    /// Choosing and pacing runs (issue 18), sharding (issue 17); boxed to
    /// keep `Command` small.
    pub(crate) select: Box<RunFlags>,
}

/// The command being parsed, for errors and help.
#[derive(Clone, Copy)]
struct Ctx {
    name: &'static str,
    usage: &'static str,
    /// The command's help text: its options are the suggestions for a typo.
    help: &'static str,
}

impl Ctx {
    fn usage_error(self, message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            usage: self.usage,
            command: self.name,
        }
    }

    fn lexopt(self, e: lexopt::Error) -> Error {
        if let lexopt::Error::UnexpectedOption(opt) = &e {
            if let Some(best) = closest_option(opt, self.help) {
                return self.usage_error(format!("{e} (did you mean '{best}'?)"));
            }
        }
        self.usage_error(e.to_string())
    }
}

/// Parses `args` (without the program name).
pub(crate) fn parse<I>(args: I) -> Result<Parsed>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = Parser::from_args(args);
    let mut g = GlobalArgs::default();
    let ctx = Ctx {
        name: "fluxloop",
        usage: help::USAGE_TOP,
        help: help::TOP,
    };
    let p = &mut p;
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(help::TOP)),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Value(cmd) => {
                let cmd = cmd.to_string_lossy().into_owned();
                return match cmd.as_str() {
                    "auth" => parse_auth(p, g),
                    "whoami" => finish(p, g, help::AUTH_STATUS, Command::Auth(AuthCommand::Status)),
                    "apikeys" | "api-keys" => parse_apikeys(p, g),
                    "config" => parse_config(p, g),
                    "sync" => parse_sync(p, g),
                    "test" => parse_test(p, g),
                    "report" => report::parse_report(p, g),
                    "init" => setup::parse_init(p, g),
                    "doctor" => finish(p, g, help::DOCTOR, Command::Doctor),
                    "completion" | "completions" => setup::parse_completion(p, g),
                    "help" => help_for(p, g, ctx),
                    "version" => Ok(Parsed::Version),
                    other => Err(unknown_command(
                        ctx,
                        other,
                        &[
                            "auth",
                            "apikeys",
                            "config",
                            "sync",
                            "test",
                            "report",
                            "whoami",
                            "init",
                            "doctor",
                            "completion",
                            "help",
                        ],
                    )),
                };
            }
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    Err(ctx.usage_error("no command given"))
}

/// One argument, owned, so the parser can be borrowed again for its value.
enum OwnedArg {
    Short(char),
    Long(String),
    Value(OsString),
}

impl OwnedArg {
    fn arg(&self) -> lexopt::Arg<'_> {
        match self {
            OwnedArg::Short(c) => Short(*c),
            OwnedArg::Long(s) => Long(s),
            OwnedArg::Value(v) => Value(v.clone()),
        }
    }
}

fn next(p: &mut Parser, ctx: Ctx) -> Result<Option<OwnedArg>> {
    Ok(p.next().map_err(|e| ctx.lexopt(e))?.map(|arg| match arg {
        Short(c) => OwnedArg::Short(c),
        Long(s) => OwnedArg::Long(s.to_string()),
        Value(v) => OwnedArg::Value(v),
    }))
}

/// Handles a global flag; returns false if `arg` is not one.
fn global(arg: &lexopt::Arg<'_>, p: &mut Parser, g: &mut GlobalArgs, ctx: Ctx) -> Result<bool> {
    match arg {
        Long("profile") => g.profile = Some(string(p, ctx, "--profile")?),
        Long("api-key") => g.api_key = Some(string(p, ctx, "--api-key")?),
        Long("oidc") => g.oidc = Some(true),
        Long("no-oidc") => g.oidc = Some(false),
        Long("endpoint") | Long("api-url") => g.endpoint = Some(string(p, ctx, "--endpoint")?),
        Long("config") => g.config = Some(p.value().map_err(|e| ctx.lexopt(e))?.into()),
        Long("ca-cert") => g.ca_cert = Some(p.value().map_err(|e| ctx.lexopt(e))?.into()),
        Short('y') | Long("yes") => g.yes = true,
        Long("json") => g.json = true,
        Short('q') | Long("quiet") => g.quiet = true,
        Short('v') | Long("verbose") => g.verbose = g.verbose.saturating_add(1),
        Long("no-color") => g.color = Some(ColorChoice::Never),
        Long("color") | Long("colour") => g.color = Some(choice(p, ctx, "--color")?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn string(p: &mut Parser, ctx: Ctx, flag: &str) -> Result<String> {
    let v = p.value().map_err(|e| ctx.lexopt(e))?;
    v.into_string()
        .map_err(|_| ctx.usage_error(format!("the value of {flag} is not valid UTF-8")))
}

fn number<T>(p: &mut Parser, ctx: Ctx, flag: &str, min: T) -> Result<T>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let v = string(p, ctx, flag)?;
    match v.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ctx.usage_error(format!(
            "invalid value '{v}' for {flag}: expected a number of at least {min}"
        ))),
    }
}

fn choice<T: FromStr<Err = String>>(p: &mut Parser, ctx: Ctx, flag: &str) -> Result<T> {
    string(p, ctx, flag)?
        .parse()
        .map_err(|e: String| ctx.usage_error(format!("{e} for {flag}")))
}

fn unknown_command(ctx: Ctx, got: &str, known: &[&str]) -> Error {
    let best = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(got, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    let message = match best {
        Some((_, k)) => format!("unknown command '{got}' (did you mean '{k}'?)"),
        None => format!("unknown command '{got}'"),
    };
    ctx.usage_error(message)
}

/// Reads the subcommand name of a group; `--help` or nothing shows the group's help.
fn subcommand(p: &mut Parser, g: &mut GlobalArgs, ctx: Ctx) -> Result<Option<String>> {
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, g, ctx)? {
            continue;
        }
        return match arg {
            Short('h') | Long("help") => Ok(None),
            Value(v) => Ok(Some(v.to_string_lossy().into_owned())),
            _ => Err(ctx.lexopt(arg.unexpected())),
        };
    }
    Ok(None)
}

/// Accepts only global flags and `--help` until the end.
fn finish(p: &mut Parser, mut g: GlobalArgs, help: &'static str, cmd: Command) -> Result<Parsed> {
    match positionals(p, &mut g, ctx_of(help), 0)? {
        Some(_) => Ok(Parsed::Run(g, cmd)),
        None => Ok(Parsed::Help(help)),
    }
}

/// Reads global flags and up to `max` positional arguments to the end;
/// `None` when `--help` was asked for.
fn positionals(
    p: &mut Parser,
    g: &mut GlobalArgs,
    ctx: Ctx,
    max: usize,
) -> Result<Option<Vec<String>>> {
    let mut values = Vec::new();
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, g, ctx)? {
            continue;
        }
        match arg {
            Value(v) if values.len() < max => values.push(
                v.into_string()
                    .map_err(|_| ctx.usage_error("an argument is not valid UTF-8"))?,
            ),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    Ok(Some(values))
}

/// The name and usage line are the first line of each help text.
fn ctx_of(help: &'static str) -> Ctx {
    let usage = help
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("usage: ");
    let name = usage.split(" [").next().unwrap_or(usage);
    let name = name.split(" <").next().unwrap_or(name);
    let name = name.split(" --").next().unwrap_or(name);
    let name = name.split(" KEY").next().unwrap_or(name);
    Ctx { name, usage, help }
}

/// The option of `help` (or a global one) nearest to a mistyped `got`.
fn closest_option(got: &str, help: &str) -> Option<String> {
    let got = got.trim_start_matches('-');
    if got.len() < 2 {
        return None;
    }
    let options = help
        .split_whitespace()
        .chain(help::GLOBAL.split_whitespace());
    options
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches([',', '.', ')', ']']))
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(|w| (strsim::damerau_levenshtein(got, w), w))
        .filter(|(d, w)| *d <= 2 && *d < w.len())
        .min()
        .map(|(_, w)| format!("--{w}"))
}

fn parse_auth(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::AUTH);
    let Some(sub) = subcommand(p, &mut g, ctx)? else {
        return Ok(Parsed::Help(help::AUTH));
    };
    match sub.as_str() {
        "login" => {
            let ctx = ctx_of(help::AUTH_LOGIN);
            let (mut no_browser, mut force) = (false, false);
            while let Some(owned) = next(p, ctx)? {
                let arg = owned.arg();
                if global(&arg, p, &mut g, ctx)? {
                    continue;
                }
                match arg {
                    Long("no-browser") => no_browser = true,
                    Long("force") | Short('f') => force = true,
                    Short('h') | Long("help") => return Ok(Parsed::Help(help::AUTH_LOGIN)),
                    _ => return Err(ctx.lexopt(arg.unexpected())),
                }
            }
            Ok(Parsed::Run(
                g,
                Command::Auth(AuthCommand::Login { no_browser, force }),
            ))
        }
        "refresh" => finish(
            p,
            g,
            help::AUTH_REFRESH,
            Command::Auth(AuthCommand::Refresh),
        ),
        "logout" => {
            let ctx = ctx_of(help::AUTH_LOGOUT);
            let mut all = false;
            while let Some(owned) = next(p, ctx)? {
                let arg = owned.arg();
                if global(&arg, p, &mut g, ctx)? {
                    continue;
                }
                match arg {
                    Long("all") => all = true,
                    Short('h') | Long("help") => return Ok(Parsed::Help(help::AUTH_LOGOUT)),
                    _ => return Err(ctx.lexopt(arg.unexpected())),
                }
            }
            Ok(Parsed::Run(g, Command::Auth(AuthCommand::Logout { all })))
        }
        "status" | "whoami" => finish(p, g, help::AUTH_STATUS, Command::Auth(AuthCommand::Status)),
        "token" => finish(p, g, help::AUTH_TOKEN, Command::Auth(AuthCommand::Token)),
        other => Err(unknown_command(
            ctx,
            other,
            &["login", "refresh", "logout", "status", "whoami", "token"],
        )),
    }
}

fn parse_apikeys(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::APIKEYS);
    let Some(sub) = subcommand(p, &mut g, ctx)? else {
        return Ok(Parsed::Help(help::APIKEYS));
    };
    match sub.as_str() {
        "create" => parse_apikeys_create(p, g),
        "list" | "ls" => parse_apikeys_list(p, g),
        "info" => {
            let ctx = ctx_of(help::APIKEYS_INFO);
            let Some(mut values) = positionals(p, &mut g, ctx, 1)? else {
                return Ok(Parsed::Help(help::APIKEYS_INFO));
            };
            Ok(Parsed::Run(
                g,
                Command::Apikeys(ApikeysCommand::Info { key: values.pop() }),
            ))
        }
        "revoke" => {
            let ctx = ctx_of(help::APIKEYS_REVOKE);
            let Some(mut values) = positionals(p, &mut g, ctx, 1)? else {
                return Ok(Parsed::Help(help::APIKEYS_REVOKE));
            };
            let target = values
                .pop()
                .ok_or_else(|| ctx.usage_error("missing argument KEY_OR_ID"))?;
            Ok(Parsed::Run(
                g,
                Command::Apikeys(ApikeysCommand::Revoke { target }),
            ))
        }
        other => Err(unknown_command(
            ctx,
            other,
            &["create", "list", "info", "revoke"],
        )),
    }
}

fn parse_apikeys_create(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::APIKEYS_CREATE);
    let mut name = None;
    let mut key_type = KeyType::User;
    let mut scope = Scope::ReadWrite;
    let mut project_id = None;
    let mut expires_in_days = None;
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Long("name") | Short('n') => name = Some(string(p, ctx, "--name")?),
            Long("type") | Short('t') => key_type = choice(p, ctx, "--type")?,
            Long("scope") | Short('s') => scope = choice(p, ctx, "--scope")?,
            Long("project-id") => project_id = Some(string(p, ctx, "--project-id")?),
            Long("expires-in-days") => {
                expires_in_days = Some(number(p, ctx, "--expires-in-days", 1u32)?)
            }
            Short('h') | Long("help") => return Ok(Parsed::Help(help::APIKEYS_CREATE)),
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ctx.usage_error("--name must not be empty"));
    }
    Ok(Parsed::Run(
        g,
        Command::Apikeys(ApikeysCommand::Create {
            name,
            key_type,
            scope,
            project_id,
            expires_in_days,
        }),
    ))
}

fn parse_apikeys_list(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::APIKEYS_LIST);
    let (mut project_id, mut all) = (None, false);
    while let Some(owned) = next(p, ctx)? {
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Long("project-id") => project_id = Some(string(p, ctx, "--project-id")?),
            Short('a') | Long("all") => all = true,
            Short('h') | Long("help") => return Ok(Parsed::Help(help::APIKEYS_LIST)),
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    Ok(Parsed::Run(
        g,
        Command::Apikeys(ApikeysCommand::List { project_id, all }),
    ))
}

fn parse_config(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::CONFIG);
    let Some(sub) = subcommand(p, &mut g, ctx)? else {
        return Ok(Parsed::Help(help::CONFIG));
    };
    let (help_text, wanted): (&'static str, usize) = match sub.as_str() {
        "set" => (help::CONFIG_SET, 2),
        "unset" => (help::CONFIG_UNSET, 1),
        "get" => (help::CONFIG_GET, 1),
        "list" | "ls" => (help::CONFIG_LIST, 0),
        other => {
            return Err(unknown_command(
                ctx,
                other,
                &["set", "unset", "get", "list"],
            ))
        }
    };
    let ctx = ctx_of(help_text);
    let Some(values) = positionals(p, &mut g, ctx, wanted)? else {
        return Ok(Parsed::Help(help_text));
    };
    let mut values = values.into_iter();
    let cmd = match sub.as_str() {
        "set" => {
            let key = values
                .next()
                .ok_or_else(|| ctx.usage_error("missing argument KEY"))?;
            let value = values
                .next()
                .ok_or_else(|| ctx.usage_error("missing argument VALUE"))?;
            ConfigCommand::Set { key, value }
        }
        "unset" => ConfigCommand::Unset {
            key: values
                .next()
                .ok_or_else(|| ctx.usage_error("missing argument KEY"))?,
        },
        "get" => ConfigCommand::Get {
            key: values
                .next()
                .ok_or_else(|| ctx.usage_error("missing argument KEY"))?,
        },
        _ => ConfigCommand::List,
    };
    Ok(Parsed::Run(g, Command::Config(cmd)))
}

fn parse_sync(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::SYNC);
    let Some(sub) = subcommand(p, &mut g, ctx)? else {
        return Ok(Parsed::Help(help::SYNC));
    };
    match sub.as_str() {
        "pull" => {
            let ctx = ctx_of(help::SYNC_PULL);
            let mut a = PullArgs::default();
            while let Some(owned) = next(p, ctx)? {
                let arg = owned.arg();
                if global(&arg, p, &mut g, ctx)? {
                    continue;
                }
                match arg {
                    Long("scenario") | Short('s') => {
                        a.scenario = Some(string(p, ctx, "--scenario")?)
                    }
                    Long("bundle-version-id") => {
                        a.bundle_version_id = Some(string(p, ctx, "--bundle-version-id")?)
                    }
                    Long("project-id") => a.project_id = Some(string(p, ctx, "--project-id")?),
                    Long("keep-local") => a.keep_local = true,
                    Short('h') | Long("help") => return Ok(Parsed::Help(help::SYNC_PULL)),
                    _ => return Err(ctx.lexopt(arg.unexpected())),
                }
            }
            Ok(Parsed::Run(g, Command::Sync(SyncCommand::Pull(a))))
        }
        "upload" | "push" => {
            let ctx = ctx_of(help::SYNC_UPLOAD);
            let mut a = UploadArgs::default();
            while let Some(owned) = next(p, ctx)? {
                let arg = owned.arg();
                if global(&arg, p, &mut g, ctx)? {
                    continue;
                }
                match arg {
                    Long("scenario") | Short('s') => {
                        a.scenario = Some(string(p, ctx, "--scenario")?)
                    }
                    Long("result-dir") => {
                        a.result_dir = Some(p.value().map_err(|e| ctx.lexopt(e))?.into())
                    }
                    Long("skip-invalid") => a.skip_invalid = true,
                    Short('h') | Long("help") => return Ok(Parsed::Help(help::SYNC_UPLOAD)),
                    _ => return Err(ctx.lexopt(arg.unexpected())),
                }
            }
            Ok(Parsed::Run(g, Command::Sync(SyncCommand::Upload(a))))
        }
        other => Err(unknown_command(ctx, other, &["pull", "upload", "push"])),
    }
}

fn parse_test(p: &mut Parser, mut g: GlobalArgs) -> Result<Parsed> {
    let ctx = ctx_of(help::TEST);
    let mut a = TestArgs::default();
    loop {
        // Everything after `--` is the agent's command line, passed through as is.
        if let Ok(mut raw) = p.raw_args() {
            if raw.peek().is_some_and(|a| a == "--") {
                raw.next();
                for word in raw {
                    let word = word
                        .into_string()
                        .map_err(|_| ctx.usage_error("the agent command is not valid UTF-8"))?;
                    a.command.push(word);
                }
                if a.command.is_empty() {
                    return Err(ctx.usage_error("no agent command after --"));
                }
                break;
            }
        }
        let Some(owned) = next(p, ctx)? else {
            break;
        };
        let arg = owned.arg();
        if global(&arg, p, &mut g, ctx)? {
            continue;
        }
        match arg {
            Long("scenario") | Short('s') => a.scenario = Some(string(p, ctx, "--scenario")?),
            Long("iterations") | Short('n') => a.iterations = Some(number(p, ctx, "--iterations", 1u32)?),
            Long("parallel") | Short('j') => a.parallel = Some(number(p, ctx, "--parallel", 1u32)?),
            Long("timeout") => {
                let t = number(p, ctx, "--timeout", 0.0f64)?;
                if t <= 0.0 || !t.is_finite() {
                    return Err(ctx.usage_error("--timeout must be a positive number of seconds"));
                }
                a.timeout = Some(t);
            }
            Long("skip-pull") => a.skip_pull = true,
            Long("keep-local") => a.keep_local = true,
            Long("skip-upload") => a.upload = Some(false),
            Long("no-skip-upload") | Long("upload") => a.upload = Some(true),
            Long("junit") => a.junit = Some(p.value().map_err(|e| ctx.lexopt(e))?.into()),
            Short('h') | Long("help") => return Ok(Parsed::Help(help::TEST)),
            Long(_) if run_flag(&arg, p, ctx, &mut a.select)? => {}
            Value(v) => {
                return Err(ctx.usage_error(format!(
                    "unexpected argument '{}' (put the agent command after --, e.g. fluxloop test -- python3 agent.py)",
                    v.to_string_lossy()
                )))
            }
            _ => return Err(ctx.lexopt(arg.unexpected())),
        }
    }
    Ok(Parsed::Run(g, Command::Test(a)))
}

/// `fluxloop help [COMMAND...]`, or the man page with `--man`.
fn help_for(p: &mut Parser, mut g: GlobalArgs, ctx: Ctx) -> Result<Parsed> {
    let mut words = Vec::new();
    let mut man = false;
    while let Some(owned) = next(p, ctx)? {
        match owned.arg() {
            Value(v) => words.push(v.to_string_lossy().into_owned()),
            Long("man") => man = true,
            // `help --help` is still a request for help.
            Short('h') | Long("help") => {}
            arg => {
                if !global(&arg, p, &mut g, ctx)? {
                    return Err(ctx.lexopt(arg.unexpected()));
                }
            }
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if man {
        if !words.is_empty() {
            return Err(ctx.usage_error("--man shows the whole manual; leave out the command"));
        }
        return Ok(Parsed::Run(g, Command::Man));
    }
    if words.is_empty() {
        return Ok(Parsed::Help(help::TOP));
    }
    if let Some(spec) = table::find(&words) {
        return Ok(Parsed::Help(spec.help));
    }
    let known = table::child_words(&[]);
    if known.contains(&words[0]) {
        return Err(ctx.usage_error(format!("no help for '{}'", words.join(" "))));
    }
    Err(unknown_command(ctx, words[0], &known))
}

#[cfg(test)]
mod tests;

/// The command line's values of settings (config/registry.rs), by flag
/// name, as text: resolution treats every source alike.
pub(crate) fn setting_flags(
    globals: &GlobalArgs,
    command: &Command,
) -> crate::config::settings::Flags {
    use crate::config::project::limits::ShardSpec;
    let mut flags = crate::config::settings::Flags::new();
    let mut put = |name: &'static str, v: Option<String>| {
        if let Some(v) = v {
            flags.insert(name, v);
        }
    };
    put("--profile", globals.profile.clone());
    put("--api-key", globals.api_key.clone());
    put("--oidc", globals.oidc.map(|on| on.to_string()));
    put("--endpoint", globals.endpoint.clone());
    put(
        "--config",
        globals.config.as_ref().map(|p| p.display().to_string()),
    );
    put(
        "--ca-cert",
        globals.ca_cert.as_ref().map(|p| p.display().to_string()),
    );
    match command {
        Command::Sync(SyncCommand::Pull(a)) => {
            put("--scenario", a.scenario.clone());
            put("--project-id", a.project_id.clone());
        }
        Command::Sync(SyncCommand::Upload(a)) => put("--scenario", a.scenario.clone()),
        Command::Apikeys(
            ApikeysCommand::Create { project_id, .. } | ApikeysCommand::List { project_id, .. },
        ) => put("--project-id", project_id.clone()),
        Command::Report(a) => {
            put("--scenario", a.scenario.clone());
            put("--batch-key", a.batch_key.clone());
        }
        Command::Test(a) => {
            put("--scenario", a.scenario.clone());
            put("--iterations", a.iterations.map(|v| v.to_string()));
            put("--parallel", a.parallel.map(|v| v.to_string()));
            put("--timeout", a.timeout.map(|v| v.to_string()));
            put("--skip-upload", a.upload.map(|v| v.to_string()));
            if !a.command.is_empty() {
                put("--", serde_json::to_string(&a.command).ok());
            }
            let s = &a.select;
            put("--retries", s.retries.map(|v| v.to_string()));
            put("--fail-under", s.fail_under.map(|v| v.to_string()));
            put("--max-failures", s.max_failures.map(|v| v.to_string()));
            put("--rate", s.rate.as_ref().map(|r| r.text.clone()));
            put(
                "--shard",
                s.shard.map(|spec| match spec {
                    ShardSpec::Auto => "auto".to_string(),
                    ShardSpec::Fixed(shard) => shard.to_string(),
                }),
            );
            put("--batch-key", s.batch_key.clone());
        }
        _ => {}
    }
    flags
}
#[cfg(test)]
mod flag_tests;
