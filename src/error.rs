//! The one error type of the CLI, its exit codes (CLI.md §6) and its hints.
//!
//! Every failure a user can meet is a variant carrying the facts needed to
//! explain it; `main` prints it once as `error: …` plus `hint:` lines.

use std::fmt;
use std::path::PathBuf;

/// Exit codes, as documented in CLI.md §6.
pub(crate) mod code {
    pub(crate) const SUCCESS: u8 = 0;
    pub(crate) const GENERAL: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const AUTH: u8 = 3;
    pub(crate) const NETWORK: u8 = 4;
    pub(crate) const NOT_FOUND: u8 = 5;
    pub(crate) const TESTS_FAILED: u8 = 10;
    pub(crate) const SYNC_CONFLICT: u8 = 12;
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong, one variant per kind of fact a user needs.
/// Clone, because a setting's problem is kept with the setting and reported
/// by each command that uses it.
#[derive(Clone, Debug)]
pub(crate) enum Error {
    /// Bad command line: unknown flag, missing value, bad value.
    Usage {
        message: String,
        /// The usage line of the command being parsed.
        usage: &'static str,
        /// The command path for `--help` (`fluxloop sync pull`).
        command: &'static str,
    },
    /// A setting that is present but wrong (bad `fluxloop.yaml`, bad value of a variable).
    Config {
        message: String,
        hint: Option<String>,
    },
    /// A file that could not be parsed, with the position of the problem.
    Parse {
        path: PathBuf,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
        hint: Option<String>,
    },
    /// A file that does not exist where one is required.
    MissingFile { path: PathBuf, what: &'static str },
    /// A file operation failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::sync::Arc<std::io::Error>,
    },
    /// No credential anywhere; `profiles` are the stored logins the
    /// selected profile is not.
    NoCredential { profiles: Vec<String> },
    /// An API key that cannot be a valid key: rejected before any network use.
    InvalidApiKey {
        /// Where the value came from (`environment variable FLUXLOOP_API_KEY`).
        origin: String,
        problem: String,
        hint: String,
    },
    /// The platform does not know the credential (401 unauthenticated).
    InvalidCredential {
        is_key: bool,
        origin: String,
        detail: String,
    },
    /// The access token (or the refresh token behind it) has expired.
    TokenExpired {
        detail: String,
        /// Whether `auth refresh` can still help (false once the refresh token is dead).
        refreshable: bool,
    },
    /// The key has been revoked on the platform.
    KeyRevoked { origin: String },
    /// The credential's scope does not cover the operation.
    PermissionDenied {
        have: Option<String>,
        need: String,
        detail: String,
    },
    /// Device login did not complete.
    AuthenticationFailed { reason: String, hint: String },
    /// The platform refused the CI's OIDC identity token (401 `oidc_rejected`).
    OidcRejected {
        /// The platform's reason code (`no_matching_policy`, `expired`, …).
        reason: String,
        message: String,
        /// The token's claims as the platform read them (never the token).
        claims: Vec<(String, String)>,
    },
    /// No OIDC identity token could be had: required but absent, the GitHub
    /// token request failed, the token file is unreadable.
    OidcUnavailable { detail: String, hint: String },
    /// Device login could not reach the platform.
    LoginUnreachable { url: String, detail: String },
    /// A credential would go over plain HTTP to a host that is not loopback.
    InsecureEndpoint { url: String },
    /// The platform could not be reached (after retries).
    Network { url: String, detail: String },
    /// The platform answered an API call with a redirect, which is not followed.
    Redirect {
        method: &'static str,
        url: String,
        status: u16,
        location: String,
    },
    /// A stored login would go to a platform other than the one that issued it.
    LoginElsewhere {
        profile: String,
        /// The platform the login belongs to.
        issuer: String,
        /// The endpoint in effect, and where it came from.
        endpoint: String,
        endpoint_origin: String,
    },
    /// The platform answered with an error not covered by a more specific variant.
    Api {
        method: &'static str,
        url: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// A project, scenario, bundle or key that does not exist.
    NotFound { what: String, hint: Option<String> },
    /// Pulled files edited locally since the last pull.
    SyncConflict { files: Vec<String> },
    /// A question would be needed but nobody can answer it.
    NeedsConfirmation { question: String },
    /// The user cancelled (Ctrl-C, or "no" at a confirmation).
    Interrupted,
    /// Something the CLI does not do (yet).
    Unsupported { what: String, hint: Option<String> },
}

impl Error {
    /// The process exit code for this error (CLI.md §6).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. }
            | Error::Config { .. }
            | Error::Parse { .. }
            | Error::MissingFile { .. }
            | Error::InsecureEndpoint { .. }
            | Error::NeedsConfirmation { .. } => code::USAGE,
            Error::NoCredential { .. }
            | Error::InvalidApiKey { .. }
            | Error::InvalidCredential { .. }
            | Error::TokenExpired { .. }
            | Error::KeyRevoked { .. }
            | Error::PermissionDenied { .. }
            | Error::LoginElsewhere { .. }
            | Error::AuthenticationFailed { .. }
            | Error::OidcRejected { .. }
            | Error::OidcUnavailable { .. } => code::AUTH,
            Error::Network { .. } | Error::Redirect { .. } | Error::LoginUnreachable { .. } => {
                code::NETWORK
            }
            Error::NotFound { .. } => code::NOT_FOUND,
            Error::Api { status, .. } => match status {
                404 => code::NOT_FOUND,
                409 => code::SYNC_CONFLICT,
                408 | 429 | 500..=599 => code::NETWORK,
                _ => code::GENERAL,
            },
            Error::SyncConflict { .. } => code::SYNC_CONFLICT,
            Error::Io { .. } | Error::Interrupted | Error::Unsupported { .. } => code::GENERAL,
        }
    }

    /// A stable snake_case name for `--json` error documents.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::Usage { .. } => "usage",
            Error::Config { .. } => "config",
            Error::Parse { .. } => "parse",
            Error::MissingFile { .. } => "missing_file",
            Error::Io { .. } => "io",
            Error::NoCredential { .. } => "no_credential",
            Error::InvalidApiKey { .. } => "invalid_api_key",
            Error::InvalidCredential { .. } => "unauthenticated",
            Error::TokenExpired { .. } => "token_expired",
            Error::KeyRevoked { .. } => "key_revoked",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::AuthenticationFailed { .. } => "authentication_failed",
            Error::OidcRejected { .. } => "oidc_rejected",
            Error::OidcUnavailable { .. } => "oidc_unavailable",
            Error::InsecureEndpoint { .. } => "insecure_endpoint",
            Error::Network { .. } => "network",
            Error::Redirect { .. } => "redirect",
            Error::LoginUnreachable { .. } => "network",
            Error::LoginElsewhere { .. } => "login_elsewhere",
            Error::Api { .. } => "api",
            Error::NotFound { .. } => "not_found",
            Error::SyncConflict { .. } => "sync_conflict",
            Error::NeedsConfirmation { .. } => "needs_confirmation",
            Error::Interrupted => "interrupted",
            Error::Unsupported { .. } => "unsupported",
        }
    }

    /// What to do next, printed as `hint: …` lines.
    pub(crate) fn hints(&self) -> Vec<String> {
        match self {
            Error::Usage { usage, command, .. } => vec![
                format!("usage: {usage}"),
                format!("run `{command} --help` for more"),
            ],
            Error::Config { hint, .. } | Error::Parse { hint, .. } => {
                hint.iter().cloned().collect()
            }
            Error::MissingFile { .. } => vec![],
            Error::Io {
                action: "write",
                path,
                ..
            } => vec![format!(
                "nothing was changed; check that {} is writable (not a read-only file system)",
                path.parent().unwrap_or(path).display()
            )],
            Error::Io { .. } => vec![],
            Error::NoCredential { profiles } => {
                let mut hints = vec![
                    "pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN".into(),
                    "or set api.key_file in fluxloop.yaml".into(),
                    "or run `fluxloop auth login` to store a login in the credentials file".into(),
                ];
                if !profiles.is_empty() {
                    hints.push(format!(
                        "or use a stored login ({}): --profile NAME, or `fluxloop config set profile NAME`",
                        profiles.join(", ")
                    ));
                }
                hints
            }
            _ => self.remote_hints(),
        }
    }

    /// Hints of the credential, network and platform errors.
    fn remote_hints(&self) -> Vec<String> {
        match self {
            Error::InvalidApiKey { hint, .. } => vec![hint.clone()],
            Error::InvalidCredential { is_key: true, .. } => vec![
                "check the key on the platform (settings/api-keys) or create a new one with `fluxloop apikeys create`".into(),
            ],
            Error::InvalidCredential { is_key: false, .. } => {
                vec!["run `fluxloop auth login`".into()]
            }
            Error::TokenExpired {
                refreshable: true, ..
            } => vec!["run `fluxloop auth refresh`, or `fluxloop auth login` to log in again".into()],
            Error::TokenExpired { .. } => vec!["run `fluxloop auth login` to log in again".into()],
            Error::KeyRevoked { .. } => vec![
                "create a new key with `fluxloop apikeys create --name NAME --scope read-write` and update FLUXLOOP_API_KEY".into(),
            ],
            Error::PermissionDenied { need, .. } if need.contains("admin") => vec![
                "managing keys needs a login or an admin key: use your login with --profile NAME (after `fluxloop auth login --profile NAME`), or pass an admin key with --api-key".into(),
            ],
            Error::PermissionDenied { .. } => vec![
                "create a key with the needed scope: `fluxloop apikeys create --scope read-write`"
                    .into(),
            ],
            Error::AuthenticationFailed { hint, .. } | Error::OidcUnavailable { hint, .. } => {
                vec![hint.clone()]
            }
            Error::OidcRejected { reason, claims, .. } => vec![oidc_hint(reason, claims)],
            Error::InsecureEndpoint { .. } => vec![
                "use an https:// endpoint; plain http:// is only allowed to localhost/127.0.0.1/::1"
                    .into(),
            ],
            Error::Network { .. } => vec![
                "check the endpoint (`fluxloop config get endpoint`), your network and proxy settings (HTTPS_PROXY, NO_PROXY)".into(),
            ],
            Error::LoginUnreachable { .. } => vec![
                "check: 1. browser opened? 2. network connection? 3. ad blockers disabled? (and the endpoint: `fluxloop config get endpoint`)".into(),
            ],
            Error::Redirect { .. } => vec![
                "API calls never follow redirects; if you trust the new address, pass it with --endpoint".into(),
            ],
            Error::LoginElsewhere {
                profile,
                issuer,
                endpoint,
                ..
            } => vec![
                format!("to use this login, pass --endpoint {issuer}"),
                format!("to use {endpoint}, log in to it: `fluxloop auth login --profile NAME --endpoint {endpoint}` (a profile other than {profile})"),
            ],
            Error::Api { .. } => vec![],
            Error::NotFound { hint, .. } => hint.iter().cloned().collect(),
            Error::SyncConflict { .. } => vec![
                "rerun with --yes to take the platform's version, or --keep-local to keep your edits"
                    .into(),
            ],
            Error::NeedsConfirmation { .. } => {
                vec!["rerun with --yes to answer yes without a prompt".into()]
            }
            Error::Interrupted => vec![],
            Error::Unsupported { hint, .. } => hint.iter().cloned().collect(),
            Error::Usage { .. }
            | Error::Config { .. }
            | Error::Parse { .. }
            | Error::MissingFile { .. }
            | Error::Io { .. }
            | Error::NoCredential { .. } => unreachable!("given by hints"),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source: std::sync::Arc::new(source),
        }
    }

    pub(crate) fn config(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Config {
            message: message.into(),
            hint,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage { message, .. } => f.write_str(message),
            Error::Config { message, .. } => f.write_str(message),
            Error::Parse {
                path,
                line,
                column,
                message,
                ..
            } => {
                write!(f, "{}", path.display())?;
                match (line, column) {
                    (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
                    (Some(l), None) => write!(f, ":{l}")?,
                    _ => {}
                }
                write!(f, ": {message}")
            }
            Error::MissingFile { path, what } => {
                write!(f, "{what} not found: {}", path.display())
            }
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::NoCredential { .. } => f.write_str("no credential found"),
            Error::InvalidApiKey {
                origin, problem, ..
            } => write!(f, "Invalid API key (from {origin}): {problem}"),
            Error::InvalidCredential {
                is_key: true,
                origin,
                detail,
            } => write!(f, "Invalid API key (from {origin}): {detail}"),
            Error::InvalidCredential {
                is_key: false,
                origin,
                detail,
            } => write!(f, "Authentication failed (from {origin}): {detail}"),
            Error::TokenExpired { detail, .. } => write!(f, "Token expired: {detail}"),
            Error::KeyRevoked { origin } => {
                write!(f, "Invalid API key (from {origin}): key revoked")
            }
            Error::PermissionDenied { have, need, detail } => {
                let have = have
                    .as_ref()
                    .map(|h| format!("this key has scope `{h}`, "))
                    .unwrap_or_default();
                let detail = Some(detail)
                    .filter(|d| !d.is_empty())
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                write!(
                    f,
                    "Permission denied: {have}the operation needs `{need}`{detail}"
                )
            }
            _ => self.fmt_remote(f),
        }
    }
}

impl Error {
    /// Display of the credential, network and platform errors.
    fn fmt_remote(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AuthenticationFailed { reason, .. } => {
                write!(f, "Authentication failed: {reason}")
            }
            Error::OidcRejected { .. } | Error::OidcUnavailable { .. } => self.fmt_oidc(f),
            Error::InsecureEndpoint { url } => {
                write!(f, "refusing to send credentials over plain http to {url}")
            }
            Error::Network { url, detail } => write!(f, "cannot reach {url}: {detail}"),
            Error::LoginUnreachable { url, detail } => {
                write!(f, "Authentication failed: cannot reach {url}: {detail}")
            }
            Error::Redirect {
                method,
                url,
                status,
                location,
            } => write!(
                f,
                "{method} {url} answered HTTP {status}, a redirect to {location}, which is not followed"
            ),
            Error::LoginElsewhere {
                profile,
                issuer,
                endpoint,
                endpoint_origin,
            } => write!(
                f,
                "the login of profile {profile} belongs to {issuer}; it is not sent to {endpoint} (from {endpoint_origin})"
            ),
            Error::Api {
                method,
                url,
                status,
                code,
                message,
            } => {
                let code = code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
                let message = Some(message)
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                write!(f, "{method} {url} failed with HTTP {status}{code}{message}")
            }
            Error::NotFound { what, .. } => write!(f, "{what} not found"),
            Error::SyncConflict { files } => write!(
                f,
                "pulled files were edited locally since the last pull: {}",
                files.join(", ")
            ),
            Error::NeedsConfirmation { question } => {
                write!(f, "{question}, but there is no terminal to ask on")
            }
            Error::Interrupted => f.write_str("cancelled"),
            Error::Unsupported { what, .. } => f.write_str(what),
            Error::Usage { .. }
            | Error::Config { .. }
            | Error::Parse { .. }
            | Error::MissingFile { .. }
            | Error::Io { .. }
            | Error::NoCredential { .. }
            | Error::InvalidApiKey { .. }
            | Error::InvalidCredential { .. }
            | Error::TokenExpired { .. }
            | Error::KeyRevoked { .. }
            | Error::PermissionDenied { .. } => unreachable!("shown by fmt"),
        }
    }
}

/// The next step for an OIDC rejection: what to fix depends on the reason,
/// and a policy that does not match is told apart from a token that is bad.
fn oidc_hint(reason: &str, claims: &[(String, String)]) -> String {
    let claim = |name: &str| {
        claims
            .iter()
            .find(|(n, _)| n == name)
            .map_or("?", |(_, v)| v.as_str())
            .to_string()
    };
    match reason {
        "issuer_not_trusted" => format!(
            "no trust policy names the issuer {}: add one with `fluxloop-platform trust add` (or on the platform's keys page) pinning this repository, e.g. sub {}",
            claim("issuer"),
            claim("subject")
        ),
        "no_matching_policy" => "the issuer is trusted but no policy's conditions match the claims above: check the policy's sub pattern (and ref, environment) with `fluxloop-platform trust list`".into(),
        "audience_mismatch" => "request the token for the audience the policy expects: set oidc.audience (FLUXLOOP_OIDC_AUDIENCE), or fix the `aud:` of GitLab's id_tokens".into(),
        "ambiguous_policy" => "policies of several projects match: set project_id in fluxloop.yaml to pick one".into(),
        "replayed" => "each OIDC token is exchanged once: let the job request a fresh one (a fixed FLUXLOOP_OIDC_TOKEN cannot be reused)".into(),
        "expired" | "not_yet_valid" | "issued_in_future" => "the token is outside its validity: request it in the same job step, and check the machine's clock".into(),
        "issuer_not_https" | "discovery_failed" => "the platform cannot verify this issuer: it must serve /.well-known/openid-configuration over https".into(),
        _ => "pass the CI's identity token unchanged: it must be signed (RS256 or ES256) by a key the issuer publishes".into(),
    }
}

impl Error {
    /// Display of the OIDC errors: a rejection's claims one per line.
    fn fmt_oidc(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OidcRejected {
                reason,
                message,
                claims,
            } => {
                write!(
                    f,
                    "the platform rejected the CI's OIDC token ({reason}): {message}"
                )?;
                for (name, value) in claims {
                    write!(f, "\n  {:<12} {value}", format!("{name}:"))?;
                }
                Ok(())
            }
            Error::OidcUnavailable { detail, .. } => f.write_str(detail),
            _ => unreachable!("shown by fmt_remote"),
        }
    }

    /// An OIDC token that could not be had or was refused: in auto mode a
    /// lower credential may be used instead.
    pub(crate) fn is_oidc_failure(&self) -> bool {
        matches!(
            self,
            Error::OidcRejected { .. } | Error::OidcUnavailable { .. }
        )
    }

    /// The first line of the message, for a one-line warning.
    pub(crate) fn summary_line(&self) -> String {
        self.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Only `Io` holds an error value; every other variant carries its cause
/// as text already rendered into Display, so it has no source to return.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::Error;

    #[test]
    fn io_errors_expose_their_cause_as_source() {
        let err = Error::io(
            "read",
            "/x/summary.json",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied by test"),
        );
        let source = err.source().expect("an io error has a source");
        assert_eq!(source.to_string(), "denied by test");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the source is the io::Error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        // Display is unchanged: transcripts compare it exactly.
        assert_eq!(
            err.to_string(),
            "cannot read /x/summary.json: denied by test"
        );
    }

    #[test]
    fn errors_without_an_error_value_have_no_source() {
        assert!(Error::config("bad", None).source().is_none());
        assert!(Error::Interrupted.source().is_none());
    }
}
