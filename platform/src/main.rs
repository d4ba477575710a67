//! `fluxloop-platform`: run the local platform (`serve`) and the admin
//! subcommands a test or a new user needs without clicking (`seed-demo`,
//! `create-key`, `approve-device`, `deny-device`, `trust`).
//!
//! stdout carries only results (the listening line, keys); everything else,
//! including the request log, goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fluxloop_platform::{Config, Platform, PlatformError, Store};

mod trust_cmd;

const HELP: &str = "\
fluxloop-platform — the local FluxLoop platform (the CLI's API on loopback, backed by SQLite)

USAGE:
    fluxloop-platform serve [--addr 127.0.0.1:8787] [--public-url URL]... [--data PATH] [--demo] [--token-ttl SECS]
                            [--poll-interval SECS] [--device-ttl SECS] [--quiet]
                            [--max-runs-per-request N] [--oidc-token-ttl SECS]
    fluxloop-platform seed-demo [--data PATH] [--inputs N]
    fluxloop-platform create-key [--project ID_OR_NAME] [--scope SCOPE] [--type user|service-account]
                                 [--name NAME] [--data PATH]
    fluxloop-platform create-user EMAIL [--password-stdin] [--data PATH]
    fluxloop-platform approve-device USER_CODE [--data PATH]
    fluxloop-platform deny-device USER_CODE [--data PATH]
    fluxloop-platform trust add --project ID_OR_NAME --issuer URL --claim NAME=PATTERN...
                                [--audience A] [--scope SCOPE] [--name NAME] [--data PATH]
    fluxloop-platform trust list [--project ID_OR_NAME] [--json] [--data PATH]
    fluxloop-platform trust remove ID [--data PATH]

OPTIONS:
    --data PATH           database file (default ./.fluxloop-platform/platform.db)
    --addr HOST:PORT      loopback address to listen on; port 0 picks a free one
    --public-url URL      another URL this server is reached by (a reverse proxy
                          in front of it), e.g. https://fluxloop.example; repeat
                          for several. Requests naming any other host are refused
    --demo                seed the demo project when the database is empty and print its key
    --token-ttl SECS      lifetime of login access tokens (default 3600)
    --poll-interval SECS  polling interval announced to `fluxloop auth login` (default 5)
    --device-ttl SECS     how long a login code stays valid (default 600)
    --quiet               no request log on stderr
    --max-runs-per-request N
                          most runs in one upload request (default 1000, as the
                          real platform; raise it only to benchmark clients that
                          send every run in one request)
    --oidc-token-ttl SECS lifetime of the access tokens OIDC exchanges issue
                          (default and most 3600)
    --inputs N            inputs in the demo bundle (default 10)
    --password-stdin      read the new user's password from the first line of stdin
                          (otherwise a random one is made and printed)
    --scope SCOPE         read, write, read-write (default) or admin; for trust
                          policies read, write or read-write (default)
    --type TYPE           user or service-account (default)
    --issuer URL          the OIDC issuer a trust policy trusts, e.g.
                          https://token.actions.githubusercontent.com
    --claim NAME=PATTERN  a claim the token must carry, exactly or as a glob
                          (`*` any run, `?` one character); repeat for several.
                          One of sub, repository, repository_id, repository_owner,
                          project_path, namespace_path, job_workflow_ref must be
                          pinned, or every repository on the issuer would match
    --audience A          the audience tokens must carry (default fluxloop)
    --json                trust list as one JSON document
    -h, --help            this help
    -V, --version         version

`serve` prints `fluxloop-platform listening on http://127.0.0.1:PORT` as its first line,
then with --demo `demo key: flx_sa_...` (this key is shown once; keep it), the demo
user's email and a new password for it, and the pages to visit.
";

const DEFAULT_DATA: &str = ".fluxloop-platform/platform.db";

/// What was typed.
enum Command {
    Help,
    Version,
    Serve {
        config: Config,
        demo: bool,
    },
    SeedDemo {
        data: PathBuf,
        inputs: usize,
    },
    CreateKey {
        data: PathBuf,
        project: Option<String>,
        scope: String,
        key_type: String,
        name: String,
    },
    Device {
        data: PathBuf,
        code: String,
        approve: bool,
    },
    CreateUser {
        data: PathBuf,
        email: String,
        password_stdin: bool,
    },
    Trust(trust_cmd::Trust),
}

fn secs(parser: &mut lexopt::Parser, flag: &str) -> Result<u64, lexopt::Error> {
    use lexopt::ValueExt;
    let v: String = parser.value()?.string()?;
    v.parse().map_err(|_| {
        lexopt::Error::Custom(format!("{flag} needs a whole number of seconds, not `{v}`").into())
    })
}

/// A whole-number flag value within `range`; `what` says which in the error.
fn number(
    parser: &mut lexopt::Parser,
    flag: &str,
    range: std::ops::RangeInclusive<usize>,
    what: &str,
) -> Result<usize, lexopt::Error> {
    use lexopt::ValueExt;
    let v = parser.value()?.string()?;
    v.parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| lexopt::Error::Custom(format!("{flag} needs {what}, not `{v}`").into()))
}

/// What the flags of any subcommand set, before it is known which apply.
struct Flags {
    data: PathBuf,
    config: Config,
    demo: bool,
    inputs: usize,
    project: Option<String>,
    scope: String,
    key_type: String,
    name: String,
    /// The positional argument: a user code or an email.
    code: Option<String>,
    password_stdin: bool,
}

impl Flags {
    fn new() -> Flags {
        Flags {
            data: PathBuf::from(DEFAULT_DATA),
            config: Config {
                addr: "127.0.0.1:8787".to_owned(),
                log: true,
                ..Config::default()
            },
            demo: false,
            inputs: 10,
            project: None,
            scope: "read-write".to_owned(),
            key_type: "service-account".to_owned(),
            name: "cli key".to_owned(),
            code: None,
            password_stdin: false,
        }
    }

    /// The command `sub` with these flags.
    fn into_command(self, sub: &str) -> Result<Command, lexopt::Error> {
        let Flags {
            data, mut config, ..
        } = self;
        Ok(match sub {
            "serve" => {
                config.data = Some(data);
                Command::Serve {
                    config,
                    demo: self.demo,
                }
            }
            "seed-demo" => Command::SeedDemo {
                data,
                inputs: self.inputs,
            },
            "create-key" => Command::CreateKey {
                data,
                project: self.project,
                scope: self.scope,
                key_type: self.key_type,
                name: self.name,
            },
            "approve-device" | "deny-device" => Command::Device {
                data,
                code: self.code.ok_or("missing argument USER_CODE")?,
                approve: sub == "approve-device",
            },
            "create-user" => Command::CreateUser {
                data,
                email: self.code.ok_or("missing argument EMAIL")?,
                password_stdin: self.password_stdin,
            },
            other => return Err(format!("unknown command `{other}`; see --help").into()),
        })
    }
}

fn parse(args: Vec<String>) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let sub = match parser.next()? {
        None => return Ok(Command::Help),
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(Short('V') | Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v.string()?,
        Some(arg) => return Err(arg.unexpected()),
    };
    if sub == "trust" {
        let trust = trust_cmd::parse(&mut parser, PathBuf::from(DEFAULT_DATA))?;
        return Ok(trust.map_or(Command::Help, Command::Trust));
    }
    let mut f = Flags::new();
    let config = &mut f.config;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("data") => f.data = parser.value()?.into(),
            Long("addr") if sub == "serve" => config.addr = parser.value()?.string()?,
            Long("demo") if sub == "serve" => f.demo = true,
            Long("public-url") if sub == "serve" => {
                config.public_urls.push(parser.value()?.string()?)
            }
            Long("quiet") if sub == "serve" => config.log = false,
            Long("token-ttl") if sub == "serve" => {
                config.access_token_ttl = Duration::from_secs(secs(&mut parser, "--token-ttl")?)
            }
            Long("device-ttl") if sub == "serve" => {
                config.device_code_ttl = Duration::from_secs(secs(&mut parser, "--device-ttl")?)
            }
            Long("max-runs-per-request") if sub == "serve" => {
                let (flag, what) = ("--max-runs-per-request", "a whole number from 1");
                config.max_runs_per_request = number(&mut parser, flag, 1..=usize::MAX, what)?;
            }
            Long("oidc-token-ttl") if sub == "serve" => {
                let (flag, what) = ("--oidc-token-ttl", "a number of seconds from 1 to 3600");
                let secs = number(&mut parser, flag, 1..=3600, what)?;
                config.oidc_token_ttl = Duration::from_secs(secs as u64);
            }
            Long("poll-interval") if sub == "serve" => {
                config.poll_interval_secs = secs(&mut parser, "--poll-interval")?
            }
            Long("inputs") if sub == "seed-demo" => {
                let what = "a number from 1 to 100000";
                f.inputs = number(&mut parser, "--inputs", 1..=100_000, what)?;
            }
            Long("project") if sub == "create-key" => f.project = Some(parser.value()?.string()?),
            Long("scope") if sub == "create-key" => f.scope = parser.value()?.string()?,
            Long("type") if sub == "create-key" => f.key_type = parser.value()?.string()?,
            Long("name") if sub == "create-key" => f.name = parser.value()?.string()?,
            Value(v)
                if f.code.is_none()
                    && matches!(
                        sub.as_str(),
                        "approve-device" | "deny-device" | "create-user"
                    ) =>
            {
                f.code = Some(v.string()?)
            }
            Long("password-stdin") if sub == "create-user" => f.password_stdin = true,
            _ => return Err(arg.unexpected()),
        }
    }
    f.into_command(&sub)
}

fn store(data: PathBuf) -> Result<Store, fluxloop_platform::PlatformError> {
    Store::open(&Config {
        data: Some(data),
        ..Config::default()
    })
}

fn run(cmd: Command) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Help => write!(out, "{HELP}")?,
        Command::Version => writeln!(out, "fluxloop-platform {}", env!("CARGO_PKG_VERSION"))?,
        Command::Serve { config, demo } => serve(config, demo, out)?,
        Command::SeedDemo { data, inputs } => {
            let st = store(data)?;
            let d = st.seed_demo(inputs)?;
            writeln!(out, "{}", d.key)?;
            eprintln!(
                "demo user {} can sign in to the pages with the password {}",
                d.user_email,
                st.reset_demo_password()?
            );
            eprintln!(
                "seeded project {} ({}), scenario {} with bundle v{}",
                d.project_name, d.project_id, d.scenario_name, d.bundle_version
            );
        }
        Command::CreateKey {
            data,
            project,
            scope,
            key_type,
            name,
        } => {
            let s = store(data)?;
            let project_id = s.find_project(project.as_deref())?;
            let k = s.create_key(&project_id, &name, &key_type, &scope)?;
            writeln!(out, "{}", k.key)?;
        }
        Command::CreateUser {
            data,
            email,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                let p = fluxloop_platform::random_password();
                writeln!(out, "{p}")?;
                p
            };
            store(data)?.create_user(&email, &password)?;
            eprintln!("created user {email}");
        }
        Command::Device {
            data,
            code,
            approve,
        } => {
            store(data)?.decide_device(&code, approve)?;
            eprintln!("{} {code}", if approve { "approved" } else { "denied" });
        }
        Command::Trust(trust) => trust_cmd::run(trust, &mut out, store)?,
    }
    Ok(())
}

/// Runs the server until the process is killed, after printing where it
/// listens and, with `demo` on a fresh database, the demo's key, user and
/// password, and the pages to visit.
fn serve(
    config: Config,
    demo: bool,
    mut out: std::io::StdoutLock<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    let platform = Platform::start(config)?;
    writeln!(out, "fluxloop-platform listening on {}", platform.url())?;
    if demo {
        if platform.store().is_empty()? {
            let d = platform.seed_demo()?;
            writeln!(out, "demo key: {}", d.key)?;
            writeln!(out, "demo project: {} ({})", d.project_name, d.project_id)?;
            writeln!(
                out,
                "demo scenario: {} ({})",
                d.scenario_name, d.scenario_id
            )?;
            let password = platform.store().reset_demo_password()?;
            writeln!(out, "demo user: {}", d.user_email)?;
            writeln!(out, "demo password: {password}")?;
            let url = platform.url();
            writeln!(
                out,
                "pages: {url}/login {url}/device {url}/settings/api-keys {url}/run-batches"
            )?;
        } else {
            eprintln!(
                "demo data already present; make a new key with `fluxloop-platform create-key --project \"Demo Project\"`"
            );
        }
    }
    out.flush()?;
    drop(out);
    eprintln!("open {}/ in a browser; stop with Ctrl-C", platform.url());
    // Serve until the process is killed; the runtime's threads do the work
    // and SQLite in WAL mode is consistent at every commit.
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    let cmd = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n  hint: run `fluxloop-platform --help`");
            return ExitCode::from(2);
        }
    };
    // A trust policy that cannot be used, or names what does not exist, is
    // bad input (exit 2) like a bad flag; the other subcommands keep 1.
    let trust = matches!(cmd, Command::Trust(_));
    match run(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("caused by: {s}");
                source = s.source();
            }
            let bad_input = e.downcast_ref::<PlatformError>().is_some_and(|p| {
                matches!(
                    p,
                    PlatformError::Invalid { .. } | PlatformError::NotFound { .. }
                )
            });
            if trust && bad_input {
                eprintln!("  hint: run `fluxloop-platform --help`");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
