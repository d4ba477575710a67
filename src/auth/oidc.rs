//! Keyless CI (issue 19): the job's own OIDC identity token, from wherever
//! the CI puts it, exchanged at the platform for a short-lived access token
//! that lives in memory only. Nothing here is ever written to disk.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::api::{Auth, Client, Endpoint, NetOptions, Observer};
use crate::config::resolve::{CredentialKind, Resolved};
use crate::config::{Env, Origin, Value};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::secret::Secret;

/// An exchanged token is exchanged again when it expires within this window.
pub(crate) const RENEW_WINDOW: Duration = Duration::from_secs(2 * 60);

/// The audience requested and expected when `oidc.audience` is not set.
pub(crate) const DEFAULT_AUDIENCE: &str = "fluxloop";

/// The variables that offer a token, in the order they are tried (the
/// `credential` declaration lists them in this order too).
pub(crate) const SOURCE_VARS: &[&str] = &[
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "FLUXLOOP_ID_TOKEN",
    "FLUXLOOP_OIDC_TOKEN",
    "FLUXLOOP_OIDC_TOKEN_FILE",
];

/// Which CI identity a credential is, for `auth status` and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    GithubActions,
    GitlabCi,
    /// `FLUXLOOP_OIDC_TOKEN` or `FLUXLOOP_OIDC_TOKEN_FILE`.
    Generic(&'static str),
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::GithubActions => f.write_str("GitHub Actions OIDC"),
            Provider::GitlabCi => f.write_str("GitLab CI OIDC"),
            Provider::Generic(var) => write!(f, "OIDC token ({var})"),
        }
    }
}

/// Where the identity token comes from.
#[derive(Clone, Debug)]
pub(crate) enum TokenSource {
    /// GitHub's token request: `GET <url>&audience=<aud>` with the request token.
    Github { url: String, request_token: Secret },
    /// A token in a variable, fixed for the job.
    Static { var: &'static str, token: Secret },
    /// A file re-read on every exchange (Kubernetes rotates projected tokens).
    File(PathBuf),
}

impl TokenSource {
    /// The source `var` offers, if it is set.
    pub(crate) fn from_env(env: &Env, var: &'static str) -> Result<Option<TokenSource>> {
        let Some(value) = env.get(var)? else {
            return Ok(None);
        };
        Ok(Some(match var {
            "ACTIONS_ID_TOKEN_REQUEST_URL" => {
                let Some(request_token) = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")? else {
                    return Ok(None);
                };
                TokenSource::Github {
                    url: value.trim().to_string(),
                    request_token: Secret::new(request_token.trim()),
                }
            }
            "FLUXLOOP_OIDC_TOKEN_FILE" => TokenSource::File(PathBuf::from(value)),
            _ => TokenSource::Static {
                var,
                token: Secret::new(value.trim()),
            },
        }))
    }

    pub(crate) fn provider(&self) -> Provider {
        match self {
            TokenSource::Github { .. } => Provider::GithubActions,
            TokenSource::Static {
                var: "FLUXLOOP_ID_TOKEN",
                ..
            } => Provider::GitlabCi,
            TokenSource::Static { var, .. } => Provider::Generic(var),
            TokenSource::File(_) => Provider::Generic("FLUXLOOP_OIDC_TOKEN_FILE"),
        }
    }

    /// The identity token now: requested from GitHub, read from the file,
    /// or the variable's.
    fn fetch(&self, audience: &str, net: &Net) -> Result<Secret> {
        match self {
            TokenSource::Github { url, request_token } => {
                github_token(url, request_token, audience, net)
            }
            TokenSource::Static { token, .. } => Ok(token.clone()),
            TokenSource::File(path) => read_token_file(path),
        }
    }
}

/// How to reach the outside: options, tracing, masks.
struct Net {
    opts: NetOptions,
    observer: Observer,
}

/// `GET <url>&audience=<aud>` (the URL already has its query string) with
/// the request token, answering `{"value": "<JWT>"}`.
fn github_token(url: &str, request_token: &Secret, audience: &str, net: &Net) -> Result<Secret> {
    let failed = |detail: String| {
        Error::OidcUnavailable {
        detail: format!("the GitHub Actions OIDC token request failed: {detail}"),
        hint: "check that the job has `permissions: id-token: write` and that ACTIONS_ID_TOKEN_REQUEST_URL is the runner's".into(),
    }
    };
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let split = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    let (base, path) = url.split_at(split);
    let endpoint = Endpoint::parse(base)
        .map_err(|why| failed(format!("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL ({why})")))?;
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}audience={}", crate::api::query_escape(audience));
    let auth = Auth {
        secret: request_token.clone(),
        origin: "environment variable ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
        is_api_key: false,
    };
    let client = Client::new(
        &endpoint,
        Some(auth),
        net.opts.clone(),
        Arc::clone(&net.observer),
    )?;
    #[derive(serde::Deserialize)]
    struct Answer {
        value: String,
    }
    match client.get::<Answer>(&path) {
        Ok(a) if !a.value.trim().is_empty() => Ok(Secret::new(a.value.trim())),
        Ok(_) => Err(failed("the answer's value is empty".into())),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The token file's contents, trimmed (a projected token has no newline,
/// a hand-written one may).
fn read_token_file(path: &std::path::Path) -> Result<Secret> {
    let unreadable = |detail: String| Error::OidcUnavailable {
        detail: format!(
            "cannot read the OIDC token file {} (FLUXLOOP_OIDC_TOKEN_FILE): {detail}",
            path.display()
        ),
        hint: "point FLUXLOOP_OIDC_TOKEN_FILE at the projected service-account token (or unset it)"
            .into(),
    };
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() > 64 * 1024 {
        return Err(unreadable("the file is far larger than a token".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(unreadable("the file is empty".into()));
    }
    Ok(Secret::new(token))
}

/// The OIDC slot of the credential chain, before and after the exchange.
#[derive(Clone, Debug)]
pub(crate) struct OidcCredential {
    pub(crate) source: TokenSource,
    pub(crate) audience: String,
    /// `oidc: true` (or `--oidc`): a failure is never passed over.
    pub(crate) forced: bool,
    /// What the platform granted, once exchanged.
    pub(crate) grant: Option<Grant>,
}

/// What an exchange gave, besides the token.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// The token's `sub`, as the platform matched it.
    pub(crate) subject: Option<String>,
    pub(crate) scope: String,
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) project_id: String,
}

/// Whether `oidc` is on, off, or decided by the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Off,
    Auto,
    Forced,
}

/// `true|false|1|0` (any case); `oidc:` as a map without `enabled` is auto.
pub(crate) fn parse_mode(v: &str) -> std::result::Result<Mode, String> {
    if v.starts_with('{') {
        return Ok(Mode::Auto);
    }
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(Mode::Forced),
        "false" | "0" => Ok(Mode::Off),
        _ => Err("is not true or false (or 1 or 0)".into()),
    }
}

/// `oidc` forced, but no source: say what the job lacks. A GitHub job
/// without `id-token: write` has no request URL, which is its own case.
pub(crate) fn no_source(env: &Env, origin: &Origin) -> Error {
    if env.is_true("GITHUB_ACTIONS") {
        return Error::OidcUnavailable {
            detail: format!(
                "OIDC is required (from {origin}) but this GitHub Actions job cannot request an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set"
            ),
            hint: "add `permissions: id-token: write` to the job (or the workflow)".into(),
        };
    }
    Error::OidcUnavailable {
        detail: format!("OIDC is required (from {origin}) but no OIDC token was found"),
        hint: "GitHub Actions: `permissions: id-token: write`; GitLab: `id_tokens: FLUXLOOP_ID_TOKEN: aud: fluxloop`; elsewhere set FLUXLOOP_OIDC_TOKEN or FLUXLOOP_OIDC_TOKEN_FILE".into(),
    }
}

/// Re-exchanges for a client: owned, so a client can call it before a stage
/// or when the platform answers `token_expired`.
pub(crate) struct Exchanger {
    client: Client,
    net: Net,
    source: TokenSource,
    audience: String,
    project_id: Option<String>,
    out: Arc<Output>,
    /// `auth token`: masks go to stderr, as stdout is the token alone.
    masks_on_stderr: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    expires_at: Option<OffsetDateTime>,
    /// SHA-256 of the identity token last sent: the platform refuses a
    /// token twice (replay), so an unchanged one is never sent again.
    last_sent: Option<[u8; 32]>,
}

impl Exchanger {
    pub(crate) fn new(ctx: &Ctx, endpoint: &str, cred: &OidcCredential) -> Result<Exchanger> {
        let parsed = Endpoint::parse(endpoint)
            .map_err(|why| Error::config(format!("invalid endpoint {endpoint:?}: {why}"), None))?;
        let project_id = ctx.settings.text("project_id")?.map(|v| v.val);
        Ok(Exchanger {
            client: ctx.anonymous_client(endpoint)?,
            net: Net {
                opts: ctx.net_options(&parsed)?,
                observer: ctx.observer(),
            },
            source: cred.source.clone(),
            audience: cred.audience.clone(),
            project_id,
            out: Arc::clone(&ctx.out),
            masks_on_stderr: false,
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn masks_on_stderr(mut self) -> Exchanger {
        self.masks_on_stderr = true;
        self
    }

    fn mask(&self, secret: &Secret) {
        if self.masks_on_stderr {
            self.out.add_mask_stderr(secret.expose());
        } else {
            self.out.add_mask(secret.expose());
        }
    }

    /// Fetches an identity token and trades it; `None` when the token at
    /// hand is the one already sent.
    pub(crate) fn exchange(&self) -> Result<Option<(Secret, Grant)>> {
        let jwt = self.source.fetch(&self.audience, &self.net)?;
        self.mask(&jwt);
        let digest: [u8; 32] = Sha256::digest(jwt.expose().as_bytes()).into();
        if self.lock().last_sent == Some(digest) {
            return Ok(None);
        }
        self.lock().last_sent = Some(digest);
        let got = crate::api::oidc::exchange(&self.client, &jwt, self.project_id.as_deref())?;
        let secret = Secret::new(got.access_token.clone());
        self.mask(&secret);
        let expires_at = crate::auth::login::parse_time(Some(&got.expires_at))
            .unwrap_or_else(|| OffsetDateTime::now_utc() + Duration::from_secs(got.expires_in));
        self.lock().expires_at = Some(expires_at);
        let grant = Grant {
            subject: got
                .matched
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            scope: got.scope,
            expires_at,
            project_id: got.project_id,
        };
        Ok(Some((secret, grant)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// For the client's refresh hook: with `only_if_expiring`, exchanges
    /// only within [`RENEW_WINDOW`] of expiry; otherwise (the platform said
    /// the token expired) always, failing when no fresh identity token can
    /// be had.
    pub(crate) fn renew(&self, only_if_expiring: bool) -> Result<Option<Secret>> {
        let soon = OffsetDateTime::now_utc() + RENEW_WINDOW;
        if only_if_expiring && self.lock().expires_at.is_some_and(|e| e > soon) {
            return Ok(None);
        }
        match self.exchange()? {
            Some((secret, _)) => Ok(Some(secret)),
            None if only_if_expiring => Ok(None),
            None => Err(Error::TokenExpired {
                detail: format!(
                    "the access token exchanged from the {} has expired, and that token was already exchanged once",
                    self.source.provider()
                ),
                refreshable: false,
            }),
        }
    }
}

/// Exchanges the OIDC credential `resolved` holds, if it holds one: the
/// access token replaces the (empty) secret. In auto mode a failed exchange
/// falls through, with one warning, to a lower credential when there is one.
pub(crate) fn begin(
    ctx: &Ctx,
    resolved: &mut Resolved,
    endpoint: &Value<String>,
    masks_on_stderr: bool,
) -> Result<Option<Exchanger>> {
    let CredentialKind::Oidc(cred) = &resolved.credential.val.kind else {
        return Ok(None);
    };
    let mut exchanger = Exchanger::new(ctx, &endpoint.val, cred)?;
    if masks_on_stderr {
        exchanger = exchanger.masks_on_stderr();
    }
    match exchanger.exchange() {
        Ok(Some((secret, grant))) => {
            resolved.credential.val.secret = secret;
            if let CredentialKind::Oidc(cred) = &mut resolved.credential.val.kind {
                cred.grant = Some(grant);
            }
            Ok(Some(exchanger))
        }
        // Only a token already sent is skipped, and none was sent yet.
        Ok(None) => Err(Error::OidcUnavailable {
            detail: format!("the {} gave no new token", resolved.credential.origin),
            hint: "let the job request a fresh OIDC token".into(),
        }),
        Err(e) if e.is_oidc_failure() && !cred.forced && resolved.fallback.is_some() => {
            let from = resolved.credential.origin.to_string();
            resolved.fall_back();
            ctx.out.warn(&format!(
                "the {from} exchange failed ({}); using the credential from {} instead",
                e.summary_line(),
                resolved.credential.origin
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// ` expires in 58 min`, as `auth status` and `doctor` say it.
pub(crate) fn expires_in(at: OffsetDateTime) -> String {
    let left = at - OffsetDateTime::now_utc();
    if left.is_negative() {
        return "expired".into();
    }
    let mins = left.whole_minutes();
    if mins >= 120 {
        format!("expires in {} h", mins / 60)
    } else {
        format!("expires in {mins} min")
    }
}

/// `GitHub Actions OIDC (repo:org/repo:ref:refs/heads/main), scope write,
/// expires in 58 min`.
pub(crate) fn describe(provider: Provider, grant: &Grant) -> String {
    let subject = grant
        .subject
        .as_deref()
        .map(|s| format!(" ({})", crate::secret::strip_controls(s, false)))
        .unwrap_or_default();
    format!(
        "{provider}{subject}, scope {}, {}",
        grant.scope,
        expires_in(grant.expires_at)
    )
}

#[cfg(test)]
mod tests;
