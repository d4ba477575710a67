//! `fluxloop doctor`: every setup check in order, each ✓ or ✗ with its
//! fix. The exit code is the class (CLI.md §6) of the first failure.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::api::types::ApiKeyRecord;
use crate::api::{Client, Endpoint, NetOptions, Scheme};
use crate::auth::login::Session;
use crate::auth::scope::{covers, Need};
use crate::config::Origin;
use crate::ctx::Ctx;
use crate::error::{code, Error};
use crate::output::Outcome;

mod agent;
use agent::agent;

/// A clock further off than this breaks token expiry and the refresh window.
const MAX_SKEW_SECS: i64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    Fail,
    /// Not checked, because an earlier check failed or it does not apply.
    Skip,
}

#[derive(Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) status: Status,
    pub(crate) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
    /// The exit code this failure stands for.
    #[serde(skip)]
    pub(crate) class: u8,
}

#[derive(Serialize)]
pub(crate) struct DoctorReport {
    pub(crate) checks: Vec<Check>,
    pub(crate) exit_code: u8,
}

/// The checks so far.
struct Checks(Vec<Check>);

impl Checks {
    fn ok(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail.into(), None, code::SUCCESS);
    }
    fn skip(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Skip, detail.into(), None, code::SUCCESS);
    }
    fn fail(
        &mut self,
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
        class: u8,
    ) {
        self.push(name, Status::Fail, detail.into(), Some(fix.into()), class);
    }
    /// A failure described by one of our errors: its message and first hint.
    fn error(&mut self, name: &'static str, e: &Error) {
        let fix = e
            .hints()
            .into_iter()
            .next()
            .unwrap_or_else(|| "see the message".into());
        self.fail(name, e.to_string(), fix, e.exit_code());
    }
    fn push(
        &mut self,
        name: &'static str,
        status: Status,
        detail: String,
        fix: Option<String>,
        class: u8,
    ) {
        self.0.push(Check {
            name,
            status,
            detail,
            fix,
            class,
        });
    }
}

pub(crate) fn run(ctx: &Ctx) -> crate::error::Result<Outcome> {
    let mut c = Checks(Vec::new());
    let config_ok = config_files(ctx, &mut c);
    let (session, key_file) = credential(ctx, &mut c, config_ok);
    let answer = if config_ok {
        network(ctx, &mut c, session)
    } else {
        c.skip("network", "not checked: fix the config first");
        None
    };
    match answer {
        Some((client, probe)) => {
            clock(&mut c, probe.date.as_deref());
            if key_file.is_some() {
                scope(&mut c, &client, &probe);
            } else {
                c.skip("scope", "not checked: no credential");
            }
        }
        None => {
            c.skip("clock", "not checked: no answer from the platform");
            c.skip("scope", "not checked: no answer from the platform");
        }
    }
    agent(ctx, &mut c, config_ok);
    match &key_file {
        Some(file) => ignored(&mut c, file.as_deref()),
        None => c.skip("git-ignore", "not checked: no credential"),
    }
    match crate::ci::provider(&ctx.env) {
        Some(p) => {
            let name = match p {
                "github_actions" => "GitHub Actions (GITHUB_ACTIONS=true)",
                "gitlab_ci" => "GitLab CI (GITLAB_CI=true)",
                "jenkins" => "Jenkins (JENKINS_URL)",
                _ => "a CI system (CI=true)",
            };
            c.ok("ci", format!("{name} detected"))
        }
        None => c.ok("ci", "not in CI (no CI variables set)"),
    }
    let exit_code =
        c.0.iter()
            .find(|c| c.status == Status::Fail)
            .map_or(code::SUCCESS, |c| c.class);
    Ok(Outcome {
        report: Box::new(DoctorReport {
            checks: c.0,
            exit_code,
        }),
        code: exit_code,
    })
}

/// fluxloop.yaml, the credentials file and .fluxloop/project.json parse.
fn config_files(ctx: &Ctx, c: &mut Checks) -> bool {
    let mut parsed = Vec::new();
    match ctx.config() {
        Ok(Some(l)) => parsed.push(l.path.display().to_string()),
        Ok(None) => {
            c.fail(
                "config",
                format!("no fluxloop.yaml in {} or above", ctx.cwd.display()),
                "run `fluxloop init`",
                code::USAGE,
            );
            return false;
        }
        Err(e) => {
            c.error("config", &e);
            return false;
        }
    }
    match ctx.credentials() {
        Ok(f) if f.path.exists() => parsed.push(f.path.display().to_string()),
        Ok(_) => {}
        Err(e) => {
            c.error("config", &e);
            return false;
        }
    }
    match ctx.project_json() {
        Ok(Some((path, _))) => parsed.push(path.display().to_string()),
        Ok(None) => {}
        Err(e) => {
            c.error("config", &e);
            return false;
        }
    }
    c.ok("config", format!("parsed {}", parsed.join(", ")));
    true
}

/// The credential, its origin, and the session built on it (refreshed,
/// issuer checked). The second value is `Some(file)` when there is a
/// credential (`file`: the key file or credentials file it came from).
fn credential(
    ctx: &Ctx,
    c: &mut Checks,
    config_ok: bool,
) -> (Option<Session>, Option<Option<PathBuf>>) {
    if !config_ok {
        c.skip("credential", "not checked: fix the config first");
        return (None, None);
    }
    let resolved = ctx
        .credential()
        .and_then(|r| Ok((r, crate::auth::login::session(ctx)?)));
    match resolved {
        Ok((r, session)) => {
            use crate::config::resolve::CredentialKind;
            // An OIDC credential is what the exchange made of it.
            let cred = match &session.resolved.credential.val.kind {
                CredentialKind::Oidc(_) => &session.resolved.credential,
                _ => &r.credential,
            };
            let (kind, origin) = match &cred.val.kind {
                CredentialKind::ApiKey => ("API key", cred.origin.to_string()),
                CredentialKind::Token => ("access token", cred.origin.to_string()),
                CredentialKind::Login { .. } => ("login", cred.origin.to_string()),
                CredentialKind::Oidc(o) => ("OIDC access token", oidc_origin(&cred.origin, o)),
            };
            c.ok(
                "credential",
                format!("{kind} {} from {origin}", cred.val.secret.masked()),
            );
            let file = match &cred.origin {
                Origin::KeyFile(p) | Origin::Profile { path: p, .. } => Some(p.clone()),
                _ => None,
            };
            (Some(session), Some(file))
        }
        Err(e) => {
            c.error("credential", &e);
            (None, None)
        }
    }
}

/// `GitHub Actions OIDC (sub), scope write, expires in 58 min`.
fn oidc_origin(origin: &Origin, o: &crate::auth::oidc::OidcCredential) -> String {
    match (origin, &o.grant) {
        (Origin::Oidc(provider), Some(grant)) => crate::auth::oidc::describe(*provider, grant),
        _ => origin.to_string(),
    }
}

/// DNS, TCP, then TLS and HTTP through the real client (proxy, extra CAs).
/// Without a credential the same request goes out anonymously.
fn network(
    ctx: &Ctx,
    c: &mut Checks,
    session: Option<Session>,
) -> Option<(Client, crate::api::Probe)> {
    let built = match session {
        Some(s) => Ok((s.client, s.endpoint)),
        None => ctx
            .endpoint()
            .and_then(|e| Ok((ctx.anonymous_client(&e.val)?, e))),
    };
    let (client, endpoint_value) = match built {
        Ok(b) => b,
        Err(e) => {
            c.error("endpoint", &e);
            return None;
        }
    };
    let endpoint = client.endpoint().clone();
    let opts = match ctx.net_options(&endpoint) {
        Ok(o) => o,
        Err(e) => {
            c.error("endpoint", &e);
            return None;
        }
    };
    c.ok(
        "endpoint",
        format!("{} from {}", endpoint_value.val, endpoint_value.origin),
    );
    let (host, port, via) = first_hop(c, &opts, &endpoint)?;
    let addr = dns(c, &host, port, &via)?;
    tcp(c, addr, opts.connect_timeout, &via)?;
    let probe = tls(c, &client, &opts)?;
    Some((client, probe))
}

/// Where the first connection goes: the proxy, if one applies, else the
/// platform. The third value says which, for the check lines.
fn first_hop(
    c: &mut Checks,
    opts: &NetOptions,
    endpoint: &Endpoint,
) -> Option<(String, u16, String)> {
    match &opts.proxy {
        Some((url, var)) => match Endpoint::parse(url) {
            Ok(p) => Some((
                p.host().to_string(),
                p.port(),
                format!(" (proxy from {var})"),
            )),
            Err(why) => {
                c.fail(
                    "dns",
                    format!("the proxy {var} is not a URL: {why}"),
                    format!("fix {var}"),
                    code::USAGE,
                );
                None
            }
        },
        None => Some((endpoint.host().to_string(), endpoint.port(), String::new())),
    }
}

/// The request itself, through the proxy and with the configured trust.
fn tls(c: &mut Checks, client: &Client, opts: &NetOptions) -> Option<crate::api::Probe> {
    let endpoint = client.endpoint();
    let probe = match crate::api::keys::probe_key_self(client) {
        Ok(p) => p,
        Err(f) if f.tls => {
            c.fail(
                "tls",
                f.detail,
                "pass the CA that signs the platform's certificate with --ca-cert PATH or SSL_CERT_FILE",
                code::NETWORK,
            );
            return None;
        }
        Err(f) => {
            let fix = match &opts.proxy {
                Some((_, var)) => format!(
                    "check {var}, or add the platform's host to NO_PROXY to connect directly"
                ),
                None => "check the endpoint and that the platform is up".into(),
            };
            c.fail("tls", f.detail, fix, code::NETWORK);
            return None;
        }
    };
    match endpoint.scheme() {
        Scheme::Https => {
            let trust = if opts.ca_files.is_empty() {
                "the bundled roots".to_string()
            } else {
                let files: Vec<String> = opts
                    .ca_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                format!("the bundled roots and {}", files.join(", "))
            };
            c.ok(
                "tls",
                format!("certificate trusted by {trust}; HTTP {}", probe.status),
            );
        }
        Scheme::Http => c.ok(
            "tls",
            format!("plain http to this machine (no TLS); HTTP {}", probe.status),
        ),
    }
    Some(probe)
}

fn dns(c: &mut Checks, host: &str, port: u16, via: &str) -> Option<SocketAddr> {
    match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => {
            c.ok("dns", format!("{host} is {}{via}", addr.ip()));
            Some(addr)
        }
        Ok(None) | Err(_) => {
            c.fail(
                "dns",
                format!("{host} does not resolve{via}"),
                "check the host name in the endpoint (or proxy) and the machine's DNS",
                code::NETWORK,
            );
            None
        }
    }
}

fn tcp(c: &mut Checks, addr: SocketAddr, timeout: std::time::Duration, via: &str) -> Option<()> {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => {
            c.ok("tcp", format!("connected to {addr}{via}"));
            Some(())
        }
        Err(e) => {
            c.fail(
                "tcp",
                format!("cannot connect to {addr}{via}: {e}"),
                "check that the platform is up and that no firewall blocks the port",
                code::NETWORK,
            );
            None
        }
    }
}

/// HTTP's `Date: Wed, 02 Dec 2026 05:17:51 GMT`.
fn http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(|t| t.assume_utc())
}

fn clock(c: &mut Checks, date: Option<&str>) {
    let Some(raw) = date else {
        c.skip("clock", "not checked: the platform sent no Date header");
        return;
    };
    let Some(server) = http_date(raw) else {
        c.skip(
            "clock",
            format!("not checked: unreadable Date header {raw:?}"),
        );
        return;
    };
    let skew = (OffsetDateTime::now_utc() - server).whole_seconds();
    if skew.abs() <= MAX_SKEW_SECS {
        c.ok(
            "clock",
            format!("within {MAX_SKEW_SECS} s of the platform's"),
        );
    } else {
        let way = if skew > 0 { "ahead of" } else { "behind" };
        c.fail(
            "clock",
            format!(
                "this machine's clock is {} s {way} the platform's ({raw})",
                skew.abs()
            ),
            "synchronise the clock (e.g. `timedatectl set-ntp true`); token expiry is judged by it",
            code::GENERAL,
        );
    }
}

/// What the key may do, from `/api/api-keys/self`.
fn scope(c: &mut Checks, client: &Client, probe: &crate::api::Probe) {
    const PATH: &str = crate::api::paths::API_KEYS_SELF;
    if probe.status == 404 {
        c.ok(
            "scope",
            "not checked: the platform has no /api/api-keys/self; the real calls will tell",
        );
        return;
    }
    if !(200..300).contains(&probe.status) {
        c.error(
            "scope",
            &client.probe_error(PATH, probe.status, &probe.body),
        );
        return;
    }
    let Ok(record) = serde_json::from_slice::<ApiKeyRecord>(&probe.body) else {
        c.fail(
            "scope",
            "the platform's answer to /api/api-keys/self is not a key record",
            "check the endpoint",
            code::GENERAL,
        );
        return;
    };
    if record.key_type.as_deref() == Some("access_token") {
        let who = record.user_email.as_deref().unwrap_or("your account");
        c.ok(
            "scope",
            format!("login of {who}: pull and upload as your account"),
        );
        return;
    }
    let scope = record.scope.clone().unwrap_or_default();
    let (read, write) = (covers(&scope, Need::Read), covers(&scope, Need::Write));
    let yes = |b: bool| if b { "yes" } else { "no" };
    let detail = format!(
        "scope {scope}: pull (read) {}, upload (write) {}",
        yes(read),
        yes(write)
    );
    if read && write {
        c.ok("scope", detail);
    } else {
        c.fail(
            "scope",
            detail,
            "create a key that can do both: fluxloop apikeys create --scope read-write",
            code::AUTH,
        );
    }
}

/// The file the credential came from is not one git would commit.
fn ignored(c: &mut Checks, file: Option<&Path>) {
    let Some(path) = file else {
        c.ok("git-ignore", "no key file in use");
        return;
    };
    match crate::config::gitcheck::exposure_warning(path) {
        Some(w) => c.fail(
            "git-ignore",
            w,
            "add the line to .gitignore; never commit a key",
            code::USAGE,
        ),
        None => c.ok(
            "git-ignore",
            format!(
                "{} is not in a git work tree, or is ignored",
                path.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = http_date("Wed, 02 Dec 2026 05:17:51 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_188_671);
        assert!(http_date("yesterday").is_none());
    }
}
