//! Logins: the authenticated client every command uses (with automatic
//! refresh of stored tokens), token refresh, and the device-code flow.

use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::api::types::{DeviceStart, LoginCredential};
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{Auth, Client, Endpoint, NetOptions, Observer};
use crate::config::credentials::{self, CredentialsFile, StoredProfile};
use crate::config::resolve::{CredentialKind, Resolved};
use crate::config::{Origin, Value};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::secret::Secret;

/// Stored tokens are refreshed when they expire within this window.
pub(crate) const REFRESH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The credential in effect and a client that sends it to the endpoint.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) resolved: Resolved,
    pub(crate) endpoint: Value<String>,
    /// Set when a stored login was refreshed on the way.
    pub(crate) refreshed: bool,
}

/// Resolves the credential and endpoint, refreshes a stored login that is
/// about to expire, registers secrets with GitHub Actions, and builds the client.
pub(crate) fn session(ctx: &Ctx) -> Result<Session> {
    let mut resolved = ctx.credential()?;
    let endpoint = ctx.endpoint()?;
    note_profile_override(ctx, &resolved, &endpoint);
    if let CredentialKind::Oidc(_) = &resolved.credential.val.kind {
        // Before the identity token leaves, not after.
        warn_repository_endpoint(ctx, &resolved.credential.origin, &endpoint);
    }
    let exchanger = crate::auth::oidc::begin(ctx, &mut resolved, &endpoint, false)?;
    ctx.mask_for_ci(
        &resolved.credential.origin,
        resolved.credential.val.secret.expose(),
    );
    let mut refreshed = false;
    if let CredentialKind::Login {
        profile,
        issuer,
        expires_at,
        ..
    } = &resolved.credential.val.kind
    {
        check_issuer(profile, issuer.as_deref(), &endpoint)?;
        let soon = OffsetDateTime::now_utc() + REFRESH_WINDOW;
        if expires_at.is_some_and(|e| e <= soon) {
            let profile = profile.clone();
            let (secret, stored) = refresh(ctx, &endpoint.val, &profile, Refresh::IfExpiring)?;
            ctx.mask_for_ci(&resolved.credential.origin, secret.expose());
            resolved.credential.val.secret = secret;
            if let CredentialKind::Login {
                expires_at,
                refresh_token,
                user_email,
                ..
            } = &mut resolved.credential.val.kind
            {
                *expires_at = parse_time(stored.expires_at.as_deref());
                *refresh_token = stored.refresh_token.clone().map(Secret::new);
                *user_email = stored.user_email.clone();
            }
            refreshed = true;
        }
    } else if !matches!(resolved.credential.origin, Origin::Oidc(_)) {
        warn_repository_endpoint(ctx, &resolved.credential.origin, &endpoint);
    }
    let auth = Auth {
        secret: resolved.credential.val.secret.clone(),
        origin: resolved.credential.origin.to_string(),
        is_api_key: resolved.credential.val.is_api_key(),
    };
    let mut client = ctx.client_with(&endpoint.val, auth)?;
    if let Some(exchanger) = exchanger {
        client = client.with_refresh(Box::new(move |only_if_expiring| {
            exchanger.renew(only_if_expiring)
        }));
    } else if let CredentialKind::Login { profile, .. } = &resolved.credential.val.kind {
        // The new tokens are masked for GitHub Actions as they are stored.
        let refresher = ctx.refresher(&endpoint.val, profile)?;
        client = client.with_refresh(Box::new(move |only_if_expiring| {
            let when = if only_if_expiring {
                Refresh::IfExpiring
            } else {
                Refresh::Always
            };
            refresher.run(when).map(|(secret, _)| Some(secret))
        }));
    }
    Ok(Session {
        client,
        resolved,
        endpoint,
        refreshed,
    })
}

/// `--profile NAME` beats the environment (CLI.md §2); say what it beat, so
/// a CI log shows why FLUXLOOP_API_KEY was not used.
fn note_profile_override(ctx: &Ctx, resolved: &Resolved, endpoint: &Value<String>) {
    let Some(profile) = ctx.globals.profile.as_deref() else {
        return;
    };
    let mut ignored: Vec<String> = Vec::new();
    if matches!(resolved.credential.origin, Origin::Profile { .. }) {
        ignored.extend(
            resolved
                .shadowed
                .iter()
                .filter(|o| matches!(o, Origin::Env(_)))
                .map(|o| o.to_string()),
        );
    }
    if matches!(endpoint.origin, Origin::Profile { .. }) {
        for name in ["FLUXLOOP_API_ENDPOINT", "FLUXLOOP_API_URL"] {
            if ctx.env.get_os(name).is_some() {
                ignored.push(format!("environment variable {name}"));
            }
        }
    }
    if !ignored.is_empty() {
        ctx.out.info(&format!(
            "note: --profile {profile} uses its own login and endpoint; ignoring {}",
            ignored.join(", ")
        ));
    }
}

/// Whether an endpoint was named only by a file in the repository, which
/// anyone who can open a pull request can change.
fn from_repository(origin: &Origin) -> bool {
    matches!(
        origin,
        Origin::ProjectConfig { .. } | Origin::ProjectJson(_)
    )
}

/// A stored login goes only to the platform that issued it (the profile's
/// `api_endpoint`). A login stored before profiles recorded their platform
/// goes where the user points it (flag, environment, the default), never
/// where only a repository file does.
pub(crate) fn check_issuer(
    profile: &str,
    issuer: Option<&str>,
    endpoint: &Value<String>,
) -> Result<()> {
    let elsewhere = |issuer: String| Error::LoginElsewhere {
        profile: profile.to_string(),
        issuer,
        endpoint: endpoint.val.clone(),
        endpoint_origin: endpoint.origin.to_string(),
    };
    match issuer {
        Some(issuer) => {
            let issuer = Endpoint::parse(issuer)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| issuer.to_string());
            if issuer == endpoint.val {
                Ok(())
            } else {
                Err(elsewhere(issuer))
            }
        }
        None if from_repository(&endpoint.origin) => Err(elsewhere(
            "the platform it was made on (not recorded in the profile)".into(),
        )),
        None => Ok(()),
    }
}

/// A key or token the user set, about to go to an endpoint a repository
/// file chose: legitimate in most CI setups, but worth one line.
fn warn_repository_endpoint(ctx: &Ctx, credential: &Origin, endpoint: &Value<String>) {
    if matches!(
        credential,
        Origin::Env(_) | Origin::Flag(_) | Origin::Oidc(_)
    ) && from_repository(&endpoint.origin)
    {
        ctx.out.warn(&format!(
            "sending the credential from {credential} to {}, an endpoint named by {}",
            endpoint.val, endpoint.origin
        ));
    }
}

pub(crate) fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// When a refresh calls the platform.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// `auth refresh`: always.
    Always,
    /// Before a request: only if the stored token (which another process
    /// may have refreshed meanwhile) still expires within the window.
    IfExpiring,
}

/// Trades the profile's refresh token for new tokens and saves them (see
/// [`Refresher::run`]).
pub(crate) fn refresh(
    ctx: &Ctx,
    endpoint: &str,
    profile: &str,
    when: Refresh,
) -> Result<(Secret, StoredProfile)> {
    ctx.refresher(endpoint, profile)?.run(when)
}

/// Everything a refresh of one profile's login needs, owned: a client can
/// keep one to refresh by itself when the platform answers `token_expired`
/// in the middle of a long job.
pub(crate) struct Refresher {
    pub(crate) home: PathBuf,
    pub(crate) out: Arc<Output>,
    pub(crate) endpoint: Endpoint,
    pub(crate) opts: NetOptions,
    pub(crate) observer: Observer,
    pub(crate) profile: String,
}

impl Refresher {
    /// Trades the refresh token for new tokens and saves them, all under
    /// the credentials lock: the token sent is the one stored now (a
    /// parallel refresh may have rotated it), and the file is known to be
    /// writable before the platform rotates anything, so the new refresh
    /// token is never lost.
    pub(crate) fn run(&self, when: Refresh) -> Result<(Secret, StoredProfile)> {
        let profile = self.profile.as_str();
        credentials::update(&self.home, &self.out, |file| {
            let stored = file.profile(profile).cloned().unwrap_or_default();
            let soon = OffsetDateTime::now_utc() + REFRESH_WINDOW;
            if when == Refresh::IfExpiring
                && stored.has_token()
                && parse_time(stored.expires_at.as_deref()).is_none_or(|e| e > soon)
            {
                let secret = Secret::new(stored.access_token.clone().unwrap_or_default());
                return Ok(((secret, stored), false));
            }
            let Some(refresh_token) = stored.refresh_token.clone().filter(|t| !t.is_empty()) else {
                return Err(Error::TokenExpired {
                    detail: format!(
                        "the login of profile {profile} has expired and holds no refresh token"
                    ),
                    refreshable: false,
                });
            };
            credentials::check_writable(&file.path)?;
            let client = Client::new(
                &self.endpoint,
                None,
                self.opts.clone(),
                Arc::clone(&self.observer),
            )?;
            let credential = match trade_refresh_token(&client, &refresh_token) {
                Err(Error::TokenExpired { .. } | Error::InvalidCredential { .. } | Error::KeyRevoked { .. }) => {
                    return Err(Error::TokenExpired {
                        detail: format!("the login of profile {profile} has expired and its refresh token is no longer valid"),
                        refreshable: false,
                    })
                }
                other => other?,
            };
            let stored = put_login(
                &self.out,
                file,
                profile,
                &self.endpoint.to_string(),
                credential,
            );
            let secret = Secret::new(stored.access_token.clone().unwrap_or_default());
            Ok(((secret, stored), true))
        })
    }
}

/// `POST /api/cli-connect/refresh`: the refresh token for new tokens (the
/// old refresh token stops working on the platform).
pub(crate) fn trade_refresh_token(client: &Client, refresh_token: &str) -> Result<LoginCredential> {
    let resp = crate::api::login::refresh(client, refresh_token)?;
    Ok(resp.credential)
}

/// Writes a login into `profile` of the credentials file, under its lock.
pub(crate) fn store_login(
    ctx: &Ctx,
    profile: &str,
    endpoint: &str,
    cred: LoginCredential,
) -> Result<StoredProfile> {
    ctx.update_credentials(|file| {
        // The first login becomes the default, so the next command finds it.
        if file.doc.default_profile.is_none() {
            file.doc.default_profile = Some(profile.to_string());
        }
        Ok((put_login(&ctx.out, file, profile, endpoint, cred), true))
    })
}

fn put_login(
    out: &Output,
    file: &mut CredentialsFile,
    profile: &str,
    endpoint: &str,
    cred: LoginCredential,
) -> StoredProfile {
    out.add_mask(&cred.access_token);
    if let Some(r) = &cred.refresh_token {
        out.add_mask(r);
    }
    let p = file.profile_mut(profile);
    p.access_token = Some(cred.access_token);
    if cred.refresh_token.is_some() {
        p.refresh_token = cred.refresh_token;
    }
    p.expires_at = cred.expires_at.or_else(|| {
        (OffsetDateTime::now_utc() + Duration::from_secs(3600))
            .format(&Rfc3339)
            .ok()
    });
    if cred.user_email.is_some() {
        p.user_email = cred.user_email;
    }
    if cred.user_id.is_some() {
        p.user_id = cred.user_id;
    }
    p.api_endpoint = Some(endpoint.to_string());
    p.clone()
}

/// What the device flow reports while waiting.
pub(crate) trait LoginObserver {
    /// The URL and code to show the person.
    fn show_code(&self, start: &DeviceStart);
    /// Called on every poll while pending.
    fn waiting(&self, elapsed: Duration, remaining: Duration);
}

/// Runs the device-code flow (PLATFORM-API §2) and returns the credential.
pub(crate) fn device_login(
    client: &Client,
    observer: &dyn LoginObserver,
    interrupted: &dyn Fn() -> bool,
    open_browser: &dyn Fn(&str),
) -> Result<LoginCredential> {
    let hostname = hostname();
    let start = crate::api::login::device_start(client, &format!("fluxloop CLI on {hostname}"))
        .map_err(login_failed)?;
    observer.show_code(&start);
    open_browser(&start.verification_url);
    let begun = Instant::now();
    let lifetime = Duration::from_secs(start.expires_in());
    let interval = Duration::from_secs(start.interval());
    loop {
        // Sleep in small steps so Ctrl-C is answered at once.
        let wake = Instant::now() + interval;
        while Instant::now() < wake {
            if interrupted() {
                return Err(Error::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(100).min(wake - Instant::now()));
        }
        let elapsed = begun.elapsed();
        let resp =
            crate::api::login::device_complete(client, &start.device_code).map_err(login_failed)?;
        match resp.status.as_str() {
            "pending" | "authorization_pending" | "slow_down" => {
                if elapsed >= lifetime + interval {
                    return Err(Error::AuthenticationFailed {
                        reason: format!("the login code expired after {} s without being authorized", lifetime.as_secs()),
                        hint: "run `fluxloop auth login` again and authorize in the browser within the time shown".into(),
                    });
                }
                observer.waiting(elapsed, lifetime.saturating_sub(elapsed));
            }
            "approved" => {
                return resp.credential.ok_or_else(|| Error::AuthenticationFailed {
                    reason: "the platform approved the login but sent no credential".into(),
                    hint: "run `fluxloop auth login` again".into(),
                })
            }
            "denied" => {
                return Err(Error::AuthenticationFailed {
                    reason: "the login was denied in the browser".into(),
                    hint: "run `fluxloop auth login` again and choose Authorize".into(),
                })
            }
            "expired" => {
                return Err(Error::AuthenticationFailed {
                    reason: "the login code expired before it was authorized".into(),
                    hint: "run `fluxloop auth login` again and authorize in the browser within the time shown".into(),
                })
            }
            other => {
                return Err(Error::AuthenticationFailed {
                    reason: format!("the platform answered an unknown login status {other:?}"),
                    hint: "check the endpoint (`fluxloop config get endpoint`)".into(),
                })
            }
        }
    }
}

/// Device-flow failures read as the seed's `Authentication failed`, with its checklist.
fn login_failed(e: Error) -> Error {
    match e {
        Error::Network { url, detail } => Error::LoginUnreachable { url, detail },
        Error::Api {
            status, message, ..
        } => Error::AuthenticationFailed {
            reason: format!("the platform answered HTTP {status}: {message}"),
            hint: "check: 1. browser opened? 2. network connection? 3. ad blockers disabled?"
                .into(),
        },
        other => other,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this machine".into())
}
