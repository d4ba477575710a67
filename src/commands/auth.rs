//! `auth login/refresh/logout/status`.

use std::time::Duration;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::api::types::{ApiKeyRecord, DeviceStart};
use crate::api::{Client, Endpoint};
use crate::auth::login::{self, LoginObserver};
use crate::cli::AuthCommand;
use crate::config::credentials::StoredProfile;
use crate::config::registry::{self, Source};
use crate::config::resolve::{Credential, CredentialKind};
use crate::config::{Origin, Value};
use crate::ctx::Ctx;
use crate::error::{code, Error, Result};
use crate::output::{Outcome, Output};
use crate::secret::Secret;

pub(crate) fn run(ctx: &Ctx, cmd: AuthCommand) -> Result<Outcome> {
    match cmd {
        AuthCommand::Login { no_browser, force } => login(ctx, no_browser, force),
        AuthCommand::Refresh => refresh(ctx),
        AuthCommand::Logout { all } => logout(ctx, all),
        AuthCommand::Status => status(ctx),
        AuthCommand::Token => token(ctx),
    }
}

/// `auth token`: the credential alone on stdout, as `gh auth token` prints
/// it. Not through `login::session`, which registers the mask on stdout:
/// here that line would end up inside `$(fluxloop auth token)`, so the mask
/// goes to stderr, which the runner reads too.
fn token(ctx: &Ctx) -> Result<Outcome> {
    let mut resolved = ctx.credential()?.credential;
    if let CredentialKind::Login {
        profile,
        issuer,
        expires_at,
        ..
    } = &resolved.val.kind
    {
        let endpoint = ctx.endpoint()?;
        login::check_issuer(profile, issuer.as_deref(), &endpoint)?;
        let soon = OffsetDateTime::now_utc() + login::REFRESH_WINDOW;
        if expires_at.is_some_and(|e| e <= soon) {
            let (secret, _) = login::refresh(
                ctx,
                &endpoint.val,
                &profile.clone(),
                login::Refresh::IfExpiring,
            )?;
            resolved.val.secret = secret;
        }
    }
    let mut masked = false;
    if let CredentialKind::Oidc(_) = &resolved.val.kind {
        // The exchange masks both tokens on stderr as they arrive.
        let endpoint = ctx.endpoint()?;
        let mut whole = ctx.credential()?;
        masked = crate::auth::oidc::begin(ctx, &mut whole, &endpoint, true)?.is_some();
        resolved = whole.credential;
    }
    let secret = resolved.val.secret.expose();
    if !masked {
        ctx.out.add_mask_stderr(secret);
    }
    Ok(Outcome::ok(TokenReport {
        token: secret.to_string(),
        origin: resolved.origin.to_string(),
    }))
}

/// `auth token`.
#[derive(Serialize)]
pub(crate) struct TokenReport {
    pub(crate) token: String,
    pub(crate) origin: String,
}

/// `auth login`.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum LoginReport {
    /// A valid login for this platform was already stored.
    AlreadyLoggedIn {
        profile: String,
        user_email: Option<String>,
        endpoint: String,
    },
    Authenticated {
        user_email: Option<String>,
        profile: String,
        endpoint: String,
        expires_at: Option<String>,
        credentials_file: String,
        /// A higher credential that wins over this login while it is set.
        #[serde(skip)]
        shadowed_by: Option<String>,
    },
}

/// `auth refresh`.
#[derive(Serialize)]
pub(crate) struct RefreshReport {
    pub(crate) status: &'static str,
    pub(crate) profile: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) user_email: Option<String>,
}

/// `auth logout`.
#[derive(Serialize)]
pub(crate) struct LogoutReport {
    pub(crate) logged_out: Vec<String>,
    pub(crate) profiles: Vec<LoggedOut>,
    /// Nothing was stored: which profile (or all) was asked for.
    #[serde(skip)]
    pub(crate) asked: Option<String>,
    /// Credential variables that still authenticate.
    #[serde(skip)]
    pub(crate) still_set: Vec<&'static str>,
}

struct Progress<'a> {
    out: &'a Output,
    tty: bool,
}

impl LoginObserver for Progress<'_> {
    fn show_code(&self, start: &DeviceStart) {
        // The code is what the person needs even under --quiet.
        let style = &self.out.err_style;
        // Server text: no escape sequences reach the terminal.
        let url = crate::secret::strip_controls(&start.verification_url, false).replace('\n', "");
        let code = crate::secret::strip_controls(&start.user_code, false).replace('\n', "");
        self.out.notice(&format!(
            "Open this URL in your browser to log in:\n\n    {}\n\nand check that it shows the code {}\n",
            style.bold(&url),
            style.bold(&code)
        ));
    }

    fn waiting(&self, elapsed: Duration, remaining: Duration) {
        if self.tty {
            let spinner = ['|', '/', '-', '\\'][(elapsed.as_secs() % 4) as usize];
            self.out.progress(&format!(
                "{spinner} Waiting for authorization in the browser… ({}:{:02} left, Ctrl-C to cancel)",
                remaining.as_secs() / 60,
                remaining.as_secs() % 60
            ));
        } else if elapsed.as_secs().is_multiple_of(30) && elapsed.as_secs() > 0 {
            self.out.info(&format!(
                "Still waiting for authorization ({} s left)…",
                remaining.as_secs()
            ));
        }
    }
}

fn has_display(ctx: &Ctx) -> bool {
    cfg!(target_os = "macos")
        || ctx.env.get_os("DISPLAY").is_some()
        || ctx.env.get_os("WAYLAND_DISPLAY").is_some()
}

/// The browser opens only the platform's own page, over https (or plain
/// http on loopback): a URL chosen by whoever answers on the endpoint could
/// otherwise open any page, or a local handler.
fn opens_safely(platform: &Endpoint, url: &str) -> bool {
    // Judge the page by its origin alone: scheme://authority.
    let Some(scheme_end) = url.find("://") else {
        return false;
    };
    let rest = &url[scheme_end + 3..];
    let origin_len = scheme_end + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Endpoint::parse(&url[..origin_len])
        .is_ok_and(|page| page.host() == platform.host() && page.may_carry_secrets())
}

fn open_browser(out: &Output, url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(_) => out.info("Opened the browser. If it did not appear, open the URL above yourself."),
        Err(_) => out.info(&format!(
            "Could not start {opener}; open the URL above yourself."
        )),
    }
}

fn login(ctx: &Ctx, no_browser: bool, force: bool) -> Result<Outcome> {
    // Nobody is at a browser in CI: a login would wait ten minutes for
    // nothing. `--no-browser` says someone will open the URL elsewhere.
    if ctx.in_ci() && !no_browser && !ctx.out.stderr_tty {
        return Err(Error::AuthenticationFailed {
            reason: "`auth login` needs a person at a browser, and this is a CI job without a terminal".into(),
            hint: "in CI set FLUXLOOP_API_KEY from the CI's secret store (a read-write key); to log in anyway, pass --no-browser and open the printed URL yourself".into(),
        });
    }
    let profile = ctx.profile()?;
    let endpoint = ctx.endpoint()?;
    // Refused before anything else: the device code is a secret too.
    let client = ctx.anonymous_client(&endpoint.val)?;
    let file = ctx.credentials()?;
    if !force {
        if let Some(report) =
            already_logged_in(ctx, file.profile(&profile.val), &profile, &endpoint)?
        {
            return Ok(Outcome::ok(report));
        }
    }
    let credential = device_login(ctx, &client, no_browser)?;
    let stored = login::store_login(ctx, &profile.val, &endpoint.val, credential)?;
    let path = ctx.home()?.join("credentials");
    let shadowed_by = match ctx.credential() {
        Ok(r) if !matches!(r.credential.origin, Origin::Profile { .. }) => {
            Some(r.credential.origin.to_string())
        }
        _ => None,
    };
    Ok(Outcome::ok(LoginReport::Authenticated {
        user_email: stored.user_email,
        profile: profile.val,
        endpoint: endpoint.val,
        expires_at: stored.expires_at,
        credentials_file: path.display().to_string(),
        shadowed_by,
    }))
}

/// A stored login that is fresh, for this platform, and that the platform
/// still accepts, makes a new login unneeded.
fn already_logged_in(
    ctx: &Ctx,
    stored: Option<&StoredProfile>,
    profile: &Value<String>,
    endpoint: &Value<String>,
) -> Result<Option<LoginReport>> {
    let Some(p) = stored.filter(|p| p.has_token()) else {
        return Ok(None);
    };
    let stored_endpoint = p.api_endpoint.as_deref().unwrap_or(&endpoint.val);
    let fresh = login::parse_time(p.expires_at.as_deref())
        .is_none_or(|e| e > OffsetDateTime::now_utc() + login::REFRESH_WINDOW);
    if !fresh || stored_endpoint != endpoint.val {
        return Ok(None);
    }
    let auth = crate::api::Auth {
        secret: Secret::new(p.access_token.clone().unwrap_or_default()),
        origin: format!("profile {}", profile.val),
        is_api_key: false,
    };
    let client = ctx.client_with(&endpoint.val, auth)?;
    if verdict(&client).0 != Verdict::Valid {
        return Ok(None);
    }
    Ok(Some(LoginReport::AlreadyLoggedIn {
        profile: profile.val.clone(),
        user_email: p.user_email.clone(),
        endpoint: endpoint.val.clone(),
    }))
}

/// The device flow, with the code shown, the browser opened where that is
/// safe, and Ctrl-C as a cancel.
fn device_login(
    ctx: &Ctx,
    client: &Client,
    no_browser: bool,
) -> Result<crate::api::types::LoginCredential> {
    let browser = !no_browser && !ctx.in_ci() && has_display(ctx);
    let platform = client.endpoint().clone();
    let progress = Progress {
        out: &ctx.out,
        tty: ctx.out.stderr_tty,
    };
    crate::signals::catch(&[libc::SIGINT]);
    let result = login::device_login(client, &progress, &crate::signals::stop_requested, &|url| {
        if !browser {
        } else if opens_safely(&platform, url) {
            open_browser(&ctx.out, url)
        } else {
            ctx.out.warn(&format!(
                "not opening the browser: the login page is not on {} over https",
                platform.host()
            ));
        }
    });
    ctx.out.progress_done();
    match result {
        Err(Error::Interrupted) => Err(Error::AuthenticationFailed {
            reason: "login cancelled (Ctrl-C)".into(),
            hint: "run `fluxloop auth login` again when ready".into(),
        }),
        other => other,
    }
}

fn refresh(ctx: &Ctx) -> Result<Outcome> {
    let profile = ctx.profile()?;
    let file = ctx.credentials()?;
    let stored = file.profile(&profile.val);
    if stored
        .and_then(|p| p.refresh_token.as_deref())
        .is_none_or(str::is_empty)
    {
        return Err(Error::AuthenticationFailed {
            reason: format!("profile {} has no stored login to refresh", profile.val),
            hint: format!("run `fluxloop auth login --profile {}`", profile.val),
        });
    }
    // A refresh token goes only to the platform that issued it.
    let endpoint = ctx.endpoint()?;
    login::check_issuer(
        &profile.val,
        stored.and_then(|p| p.api_endpoint.as_deref()),
        &endpoint,
    )?;
    let (_, p) = login::refresh(ctx, &endpoint.val, &profile.val, login::Refresh::Always)?;
    Ok(Outcome::ok(RefreshReport {
        status: "refreshed",
        profile: profile.val,
        expires_at: p.expires_at,
        user_email: p.user_email,
    }))
}

/// What became of one profile's login on the platform at logout.
#[derive(Serialize)]
pub(crate) struct LoggedOut {
    pub(crate) profile: String,
    /// Whether the platform ended the session (its tokens stop working now).
    pub(crate) revoked_on_platform: bool,
    /// Why it did not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) not_revoked_because: Option<String>,
}

fn logout(ctx: &Ctx, all: bool) -> Result<Outcome> {
    let profile = ctx.profile()?;
    // Where a login without a recorded platform came from: what the user
    // points at, never what only a repository file names.
    let fallback = ctx.endpoint().ok();
    let removed = ctx.update_credentials(|file| {
        let names: Vec<String> = if all {
            file.doc.profiles.keys().cloned().collect()
        } else {
            vec![profile.val.clone()]
        };
        let mut removed = Vec::new();
        for name in &names {
            let Some(p) = file.doc.profiles.get_mut(name) else {
                continue;
            };
            if !(p.has_token() || p.refresh_token.is_some()) {
                continue;
            }
            let outcome = end_session(ctx, name, p, fallback.as_ref());
            p.clear_tokens();
            removed.push(LoggedOut {
                profile: name.clone(),
                revoked_on_platform: outcome.is_ok(),
                not_revoked_because: outcome.err(),
            });
        }
        let changed = !removed.is_empty();
        Ok((removed, changed))
    })?;
    // Every credential variable the chain reads (config/registry.rs).
    let still_set = registry::get("credential")
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::Env(var) if ctx.env.get_os(var).is_some() => Some(*var),
            _ => None,
        })
        .collect();
    let asked = removed.is_empty().then(|| {
        if all {
            "no profile holds a login".to_string()
        } else {
            format!("profile {}", profile.val)
        }
    });
    Ok(Outcome::ok(LogoutReport {
        logged_out: removed.iter().map(|r| r.profile.clone()).collect(),
        profiles: removed,
        asked,
        still_set,
    }))
}

/// Ends a stored login on the platform that issued it (PLATFORM-API §2,
/// logout): the access token authenticates, the refresh token goes along.
/// An expired access token is first traded for a fresh one, or the refresh
/// token would outlive the logout. The error says why it was not ended.
fn end_session(
    ctx: &Ctx,
    profile: &str,
    stored: &StoredProfile,
    fallback: Option<&Value<String>>,
) -> std::result::Result<(), String> {
    let issuer = match (stored.api_endpoint.as_deref(), fallback) {
        (Some(e), _) => e.to_string(),
        (None, Some(e)) if login::check_issuer(profile, None, e).is_ok() => e.val.clone(),
        _ => return Err("no platform is recorded for this login".into()),
    };
    let mut access = stored.access_token.clone().unwrap_or_default();
    let mut refresh_token = stored.refresh_token.clone();
    let send = |access: &str, refresh_token: &Option<String>| -> Result<()> {
        let auth = crate::api::Auth {
            secret: Secret::new(access),
            origin: format!("profile {profile}"),
            is_api_key: false,
        };
        let client = ctx.client_with(&issuer, auth)?;
        crate::api::login::logout(&client, refresh_token.as_deref())
    };
    let result = match send(&access, &refresh_token) {
        Err(Error::TokenExpired { .. }) if refresh_token.is_some() => {
            let traded = ctx.anonymous_client(&issuer).and_then(|c| {
                login::trade_refresh_token(&c, refresh_token.as_deref().unwrap_or_default())
            });
            match traded {
                Ok(cred) => {
                    access = cred.access_token;
                    refresh_token = cred.refresh_token.or(refresh_token);
                    send(&access, &refresh_token)
                }
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match result {
        Ok(()) => Ok(()),
        // Already over on the platform: nothing is left to end.
        Err(Error::InvalidCredential { .. } | Error::TokenExpired { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The platform's opinion of a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Valid,
    Expired,
    Revoked,
    Invalid,
    Unreachable,
}

/// Asks the platform about the client's credential: `/self`, or, on a
/// platform without it, any cheap authenticated read.
fn verdict(client: &Client) -> (Verdict, Option<ApiKeyRecord>, Option<String>) {
    let classify = |e: &Error| match e {
        Error::TokenExpired { .. } => Verdict::Expired,
        Error::KeyRevoked { .. } => Verdict::Revoked,
        Error::InvalidCredential { .. } | Error::PermissionDenied { .. } => Verdict::Invalid,
        _ => Verdict::Unreachable,
    };
    match crate::api::keys::key_self(client) {
        Ok(r) => (Verdict::Valid, Some(r), None),
        Err(Error::NotFound { .. }) | Err(Error::Api { status: 404, .. }) => {
            match crate::api::projects::list_projects(client) {
                Ok(_) => (Verdict::Valid, None, None),
                Err(e) => (classify(&e), None, Some(e.to_string())),
            }
        }
        Err(e) => (classify(&e), None, Some(e.to_string())),
    }
}

/// `auth status`.
#[derive(Serialize)]
pub(crate) struct StatusReport {
    pub(crate) credential: String,
    pub(crate) kind: &'static str,
    pub(crate) origin: String,
    pub(crate) origin_kind: &'static str,
    pub(crate) shadowed: Vec<String>,
    pub(crate) profile: String,
    pub(crate) profile_origin: String,
    pub(crate) endpoint: String,
    pub(crate) endpoint_origin: String,
    pub(crate) user_email: Option<String>,
    pub(crate) expires_at: Option<String>,
    pub(crate) refreshed: bool,
    pub(crate) verdict: Verdict,
    pub(crate) detail: Option<String>,
    pub(crate) key: Option<ApiKeyRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) oidc: Option<OidcStatus>,
}

/// What the exchange of a CI's OIDC token gave, for `auth status`.
#[derive(Serialize)]
pub(crate) struct OidcStatus {
    /// `GitHub Actions OIDC`, `GitLab CI OIDC`, `OIDC token (VAR)`.
    pub(crate) source: String,
    pub(crate) subject: Option<String>,
    pub(crate) scope: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) project_id: String,
    /// The human line: source (subject), scope, expiry.
    #[serde(skip)]
    pub(crate) summary: String,
}

/// The credential's kind in words, its user and its expiry.
fn describe_kind(kind: &CredentialKind) -> (&'static str, Option<String>, Option<String>) {
    match kind {
        CredentialKind::ApiKey => ("API key", None, None),
        CredentialKind::Token => ("access token", None, None),
        CredentialKind::Oidc(_) => ("OIDC access token", None, None),
        CredentialKind::Login {
            user_email,
            expires_at,
            ..
        } => (
            "login",
            user_email.clone(),
            expires_at.and_then(|e| e.format(&Rfc3339).ok()),
        ),
    }
}

fn oidc_status(resolved: &Value<Credential>) -> Option<OidcStatus> {
    let (CredentialKind::Oidc(o), Origin::Oidc(provider)) = (&resolved.val.kind, &resolved.origin)
    else {
        return None;
    };
    let grant = o.grant.as_ref()?;
    Some(OidcStatus {
        source: provider.to_string(),
        subject: grant.subject.clone(),
        scope: grant.scope.clone(),
        expires_at: grant.expires_at.format(&Rfc3339).ok(),
        project_id: grant.project_id.clone(),
        summary: crate::auth::oidc::describe(*provider, grant),
    })
}

fn status(ctx: &Ctx) -> Result<Outcome> {
    let profile = ctx.profile()?;
    let session = match login::session(ctx) {
        Ok(s) => Ok(s),
        Err(e @ Error::TokenExpired { .. }) => Err(e),
        Err(e) => return Err(e),
    };
    let resolved = match &session {
        Ok(s) => s.resolved.credential.clone(),
        Err(_) => ctx.credential()?.credential,
    };
    let shadowed = match &session {
        Ok(s) => s.resolved.shadowed.iter().map(|o| o.to_string()).collect(),
        Err(_) => vec![],
    };
    let endpoint = ctx.endpoint()?;
    let (kind, user_email, expires_at) = describe_kind(&resolved.val.kind);
    let oidc = oidc_status(&resolved);
    let (verdict, key, detail, refreshed) = match &session {
        Ok(s) => {
            let (v, record, detail) = verdict(&s.client);
            (v, record, detail, s.refreshed)
        }
        Err(e) => (Verdict::Expired, None, Some(e.to_string()), false),
    };
    let mut user_email = user_email;
    let key = match key {
        // The OIDC line already says all the platform knows of the token.
        Some(r) if r.key_type.as_deref() == Some("oidc") => None,
        Some(r) if r.key_type.as_deref() == Some("access_token") => {
            user_email = user_email.or(r.user_email.clone());
            None
        }
        other => other,
    };
    let code = match verdict {
        Verdict::Valid => code::SUCCESS,
        Verdict::Unreachable => code::NETWORK,
        _ => code::AUTH,
    };
    let report = StatusReport {
        credential: resolved.val.secret.masked(),
        kind,
        origin: resolved.origin.to_string(),
        origin_kind: resolved.origin.kind(),
        shadowed,
        profile: profile.val,
        profile_origin: profile.origin.to_string(),
        endpoint: endpoint.val,
        endpoint_origin: endpoint.origin.to_string(),
        user_email,
        expires_at,
        refreshed,
        verdict,
        detail,
        key,
        oidc,
    };
    Ok(Outcome {
        report: Box::new(report),
        code,
    })
}
