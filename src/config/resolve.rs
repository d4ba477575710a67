//! The credential chain (CLI.md §2) over the `credential` declaration's
//! sources, and the credential and endpoint types.

use time::OffsetDateTime;

use crate::api::Endpoint;
use crate::auth::key::{self, KeyInput};
use crate::auth::oidc::{self, Mode, OidcCredential, TokenSource};
use crate::config::registry::{self, Source};
use crate::config::settings::{Entry, Raw, Reader};
use crate::config::{Env, Origin, Value};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The hosted platform.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://api.fluxloop.ai";
/// The profile used when nothing names one.
pub(crate) const DEFAULT_PROFILE: &str = "default";

/// What a credential is, which decides how it is checked and refreshed.
#[derive(Clone, Debug)]
pub(crate) enum CredentialKind {
    /// `flx_api_…` / `flx_sa_…`, format-checked.
    ApiKey,
    /// `FLUXLOOP_TOKEN`: an access token sent as is.
    Token,
    /// A login stored in a profile, refreshable.
    Login {
        profile: String,
        /// The platform that issued it (the profile's `api_endpoint`).
        issuer: Option<String>,
        refresh_token: Option<Secret>,
        expires_at: Option<OffsetDateTime>,
        user_email: Option<String>,
    },
    /// The CI's OIDC identity; the secret is empty until it is exchanged
    /// (auth/oidc.rs `begin`).
    Oidc(Box<OidcCredential>),
}

/// The credential in effect.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub(crate) secret: Secret,
    pub(crate) kind: CredentialKind,
}

impl Credential {
    pub(crate) fn is_api_key(&self) -> bool {
        matches!(self.kind, CredentialKind::ApiKey)
    }
}

/// Parses an endpoint (the one parser: [`Endpoint::parse`]); an error names
/// the value and where it came from.
pub(crate) fn parse_endpoint(url: &str, origin: &Origin) -> Result<Endpoint> {
    Endpoint::parse(url).map_err(|why| {
        Error::config(
            format!("invalid endpoint {url:?} (from {origin}): {why}"),
            Some("an endpoint looks like https://api.fluxloop.ai".into()),
        )
    })
}

/// Checks that an endpoint is an `http(s)://host[:port][/path]` URL.
pub(crate) fn validate_endpoint(url: &str, origin: &Origin) -> Result<()> {
    parse_endpoint(url, origin).map(|_| ())
}

/// The credential in effect and the sources it shadows.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub(crate) credential: Value<Credential>,
    /// Lower-priority sources that were also set (for `auth status`).
    pub(crate) shadowed: Vec<Origin>,
    /// With an OIDC credential in auto mode: the credential below it
    /// (`api.key_file`, the stored login), used when the exchange fails.
    pub(crate) fallback: Option<Box<Value<Credential>>>,
}

impl Resolved {
    /// Replaces the credential by its fallback, if there is one.
    pub(crate) fn fall_back(&mut self) {
        if let Some(lower) = self.fallback.take() {
            self.shadowed.retain(|o| *o != lower.origin);
            self.credential = *lower;
        }
    }
}

/// The credential chain, in the order of the `credential` declaration
/// (registry.rs): `--api-key`, `--profile`'s login, the key and token
/// variables, `api.key_file`, the profile's login. API keys are
/// format-checked here, before any network use. The first source found is
/// used and the others are reported as shadowed; only problems met before a
/// credential was found matter.
pub(crate) fn resolve_credential(r: &Reader<'_>, entries: &[Entry]) -> Result<Resolved> {
    let profile = entries.iter().find(|e| e.decl.key == "profile");
    let flag_profile = r.inputs.flags.get("--profile").map(String::as_str);
    let mut chain = Chain::default();
    for source in registry::get("credential").sources {
        match *source {
            // An explicit `--profile` means that profile's login, over every
            // credential in the environment (the caller notes what it ignored).
            Source::FlagProfile(_) => {
                let Some(name) = flag_profile else { continue };
                let got = r
                    .read(source, profile)
                    .and_then(|raw| raw.map(|raw| login(r, raw)).transpose());
                if matches!(got, Ok(None)) && chain.found.is_empty() {
                    return Err(Error::NotFound {
                        what: format!("a login in profile {name} (from --profile)"),
                        hint: Some(format!("run `fluxloop auth login --profile {name}`, or leave out --profile to use FLUXLOOP_API_KEY")),
                    });
                }
                chain.push(got);
            }
            Source::Profile(_) if flag_profile.is_none() && chain.wants_fallback() => {
                // Below an OIDC credential: a fallback if there is one, and
                // no error if there is none.
                let mut lower = Chain::default();
                if profile_login(r, source, profile, &mut lower).is_ok() {
                    chain.found.extend(lower.found);
                }
            }
            Source::Profile(_) if !chain.settled() && flag_profile.is_none() => {
                profile_login(r, source, profile, &mut chain)?;
            }
            Source::Env(name) if oidc::SOURCE_VARS.contains(&name) => {
                let got = oidc_credential(r, entries, name);
                chain.push(got);
            }
            Source::Profile(_) => {}
            _ => chain.push(key_or_token(r, source)),
        }
    }
    chain.finish()
}

/// The credentials found so far, in order, and the first problem met
/// before any was found.
#[derive(Default)]
struct Chain {
    found: Vec<Value<Credential>>,
    first_error: Option<Error>,
}

impl Chain {
    fn push(&mut self, got: Result<Option<Value<Credential>>>) {
        match got {
            Ok(Some(v)) => self.found.push(v),
            Ok(None) => {}
            Err(e) => {
                if self.found.is_empty() && self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }

    /// A credential was found, or a source before it was broken.
    fn settled(&self) -> bool {
        !self.found.is_empty() || self.first_error.is_some()
    }

    /// Only OIDC credentials in auto mode so far, and no lower one yet.
    fn wants_fallback(&self) -> bool {
        !self.found.is_empty()
            && self
                .found
                .iter()
                .all(|v| matches!(&v.val.kind, CredentialKind::Oidc(c) if !c.forced))
    }

    fn finish(self) -> Result<Resolved> {
        let mut iter = self.found.into_iter();
        let Some(credential) = iter.next() else {
            return Err(self
                .first_error
                .unwrap_or(Error::NoCredential { profiles: vec![] }));
        };
        let lower: Vec<Value<Credential>> = iter.collect();
        let fallback = match &credential.val.kind {
            CredentialKind::Oidc(c) if !c.forced => lower
                .iter()
                .find(|v| !matches!(v.val.kind, CredentialKind::Oidc(_)))
                .cloned()
                .map(Box::new),
            _ => None,
        };
        Ok(Resolved {
            credential,
            shadowed: lower.into_iter().map(|v| v.origin).collect(),
            fallback,
        })
    }
}

/// The last resort: the login of the profile in effect, or an error that
/// lists the profiles that hold one.
fn profile_login(
    r: &Reader<'_>,
    source: &Source,
    profile: Option<&Entry>,
    chain: &mut Chain,
) -> Result<()> {
    match profile.map(Entry::value).transpose().map(Option::flatten) {
        Ok(Some(p)) => match r.read(source, profile) {
            Ok(Some(raw)) => chain.push(login(r, raw).map(Some)),
            Ok(None) => return Err(no_login(r, &p)),
            Err(e) => chain.first_error = Some(e),
        },
        Ok(None) => {}
        Err(e) => chain.first_error = Some(e),
    }
    Ok(())
}

/// A key from a flag, a variable or `api.key_file`, or a token variable.
fn key_or_token(r: &Reader<'_>, source: &Source) -> Result<Option<Value<Credential>>> {
    match *source {
        Source::Env(name) if TOKEN_VARS.contains(&name) => r
            .read(source, None)
            .and_then(|raw| raw.map(token).transpose()),
        Source::Env(name) => match r.read(source, None) {
            Ok(raw) => raw.map(typed_key).transpose(),
            Err(_) => Err(Error::InvalidApiKey {
                origin: format!("environment variable {name}"),
                problem: "the value is not valid UTF-8".into(),
                hint: "an API key is plain ASCII: flx_api_… or flx_sa_…".into(),
            }),
        },
        Source::Yaml(_) => match r.read(source, None)? {
            Some(raw) => read_key_file(r.inputs.env, raw).map(Some),
            None => Ok(None),
        },
        _ => r
            .read(source, None)
            .and_then(|raw| raw.map(typed_key).transpose()),
    }
}

/// The OIDC slot for one of its variables: nothing when `oidc` is false or
/// the variable is unset; with `oidc: true`, the last variable unset and
/// none before it set is an error that says what the job lacks.
fn oidc_credential(
    r: &Reader<'_>,
    entries: &[Entry],
    var: &'static str,
) -> Result<Option<Value<Credential>>> {
    let setting = |key: &str| {
        entries
            .iter()
            .find(|e| e.decl.key == key)
            .map(Entry::value)
            .transpose()
            .map(Option::flatten)
    };
    let mode = match setting("oidc")? {
        Some(raw) => oidc::parse_mode(&raw.val).map_err(|why| {
            Error::config(
                format!("oidc {:?} (from {}) {why}", raw.val, raw.origin),
                Some("set oidc to true (require keyless CI), false (never), or leave it unset (auto)".into()),
            )
        })?,
        None => Mode::Auto,
    };
    if mode == Mode::Off {
        return Ok(None);
    }
    let env = r.inputs.env;
    let Some(source) = TokenSource::from_env(env, var)? else {
        let last = oidc::SOURCE_VARS.last() == Some(&var);
        let any = oidc::SOURCE_VARS
            .iter()
            .any(|v| matches!(TokenSource::from_env(env, v), Ok(Some(_))));
        if mode == Mode::Forced && last && !any {
            let origin = setting("oidc")?.map_or(Origin::Default, |v| v.origin);
            return Err(oidc::no_source(env, &origin));
        }
        return Ok(None);
    };
    let audience = setting("oidc.audience")?
        .map(|v| v.val.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| oidc::DEFAULT_AUDIENCE.to_string());
    let provider = source.provider();
    Ok(Some(Value::new(
        Credential {
            secret: Secret::new(""),
            kind: CredentialKind::Oidc(Box::new(OidcCredential {
                source,
                audience,
                forced: mode == Mode::Forced,
                grant: None,
            })),
        },
        Origin::Oidc(provider),
    )))
}

/// Variables holding an access token rather than an API key.
const TOKEN_VARS: &[&str] = &["FLUXLOOP_TOKEN"];

fn typed_key(raw: Raw) -> Result<Value<Credential>> {
    let secret = key::api_key_from(&raw.val, KeyInput::Typed, &raw.origin.to_string())?;
    Ok(api_key_value(secret, raw.origin))
}

fn token(raw: Raw) -> Result<Value<Credential>> {
    let t = raw.val.trim();
    if let Some(detail) = token_problem(t) {
        let Origin::Env(name) = raw.origin else {
            unreachable!("tokens come from the environment")
        };
        return Err(Error::InvalidCredential {
            is_key: false,
            origin: format!("environment variable {name}"),
            detail,
        });
    }
    Ok(Value::new(
        Credential {
            secret: Secret::new(t),
            kind: CredentialKind::Token,
        },
        raw.origin,
    ))
}

/// The stored login a profile source found, with what the profile records
/// beside its access token.
fn login(r: &Reader<'_>, raw: Raw) -> Result<Value<Credential>> {
    let Origin::Profile { name, path } = &raw.origin else {
        unreachable!("logins come from a profile")
    };
    if let Some(problem) = token_problem(&raw.val) {
        return Err(Error::InvalidCredential {
            is_key: false,
            origin: format!("profile {name} in {}", path.display()),
            detail: problem,
        });
    }
    let creds = r.credentials()?;
    let stored = creds.profile(name).cloned().unwrap_or_default();
    Ok(Value::new(
        Credential {
            secret: Secret::new(raw.val.clone()),
            kind: CredentialKind::Login {
                profile: name.clone(),
                issuer: stored.api_endpoint.filter(|e| !e.is_empty()),
                refresh_token: stored.refresh_token.map(Secret::new),
                expires_at: crate::auth::login::parse_time(stored.expires_at.as_deref()),
                user_email: stored.user_email,
            },
        },
        raw.origin,
    ))
}

/// No credential anywhere: say which profiles exist and how to pick one.
fn no_login(r: &Reader<'_>, profile: &Value<String>) -> Error {
    let Ok(creds) = r.credentials() else {
        return Error::NoCredential { profiles: vec![] };
    };
    let known: Vec<String> = creds
        .doc
        .profiles
        .iter()
        .filter(|(_, p)| p.has_token())
        .map(|(n, _)| n.clone())
        .collect();
    if known.is_empty() {
        return Error::NoCredential { profiles: vec![] };
    }
    if profile.origin != Origin::Default && !known.contains(&profile.val) {
        return Error::NotFound {
            what: format!(
                "a login in profile {} (from {}) in {}",
                profile.val,
                profile.origin,
                creds.path.display()
            ),
            hint: Some(format!(
                "known profiles: {}; pick one with --profile NAME or `fluxloop config set profile NAME`, or log in with `fluxloop auth login --profile {}`",
                known.join(", "),
                profile.val
            )),
        };
    }
    Error::NoCredential { profiles: known }
}

/// Why a bearer token cannot be sent in an HTTP header, if it cannot: it
/// must be one line of visible ASCII. The message never contains the value.
fn token_problem(token: &str) -> Option<String> {
    let (pos, c) = token.char_indices().find(|(_, c)| !c.is_ascii_graphic())?;
    let shown = match c {
        ' ' => "a space".to_string(),
        '\n' | '\r' => "a line break".to_string(),
        '\t' => "a tab".to_string(),
        c => format!("U+{:04X}", c as u32),
    };
    Some(format!(
        "the token contains {shown} at position {}; a token is one line of visible ASCII",
        pos + 1
    ))
}

/// The key in the file `api.key_file` names (relative to fluxloop.yaml).
fn read_key_file(env: &Env, raw: Raw) -> Result<Value<Credential>> {
    let Origin::ProjectConfig { path: config, .. } = &raw.origin else {
        unreachable!("api.key_file comes from fluxloop.yaml")
    };
    let dir = config.parent().unwrap_or(std::path::Path::new("."));
    let path = dir.join(env.expand_tilde(&raw.val));
    let origin = Origin::KeyFile(path.clone());
    let text = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() > 4096 => {
            return Err(Error::InvalidApiKey {
                origin: origin.to_string(),
                problem: "the file is far larger than a key".into(),
                hint: "api.key_file must name a file holding only the key".into(),
            })
        }
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| Error::InvalidApiKey {
            origin: origin.to_string(),
            problem: "the file is not valid UTF-8 text".into(),
            hint: "api.key_file must name a file holding only the key".into(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path,
                what: "api.key_file",
            })
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let secret = key::api_key_from(&text, KeyInput::File, &origin.to_string())?;
    Ok(api_key_value(secret, origin))
}

fn api_key_value(secret: Secret, origin: Origin) -> Value<Credential> {
    Value::new(
        Credential {
            secret,
            kind: CredentialKind::ApiKey,
        },
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{Flags, Inputs, Settings};

    const KEY_A: &str = "flx_api_AAAAAAAAAAAAAAAAAAAAAAAA";
    const KEY_B: &str = "flx_sa_BBBBBBBBBBBBBBBBBBBBBBBB";
    const KEY_F: &str = "flx_api_FFFFFFFFFFFFFFFFFFFFFFFF";

    /// The sources of one test case; `None` means unset.
    #[derive(Default, Clone)]
    struct Case {
        flag_key: Option<&'static str>,
        env: Vec<(&'static str, &'static str)>,
        key_file: Option<&'static str>,
        yaml_endpoint: Option<&'static str>,
        project_json_url: Option<&'static str>,
        profile_token: bool,
        profile_endpoint: Option<&'static str>,
        default_profile: Option<&'static str>,
        flag_profile: Option<&'static str>,
        flag_endpoint: Option<&'static str>,
    }

    /// The case's sources as real files in a temp dir, resolved.
    fn settings(c: &Case, corrupt_credentials: bool) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut yaml = String::from("api:\n  retries: 4\n");
        if let Some(e) = c.yaml_endpoint {
            yaml.push_str(&format!("  endpoint: {e}\n"));
        }
        if let Some(k) = c.key_file {
            std::fs::write(root.join("key.txt"), format!("{k}\n")).unwrap();
            yaml.push_str("  key_file: key.txt\n");
        }
        std::fs::write(root.join("fluxloop.yaml"), yaml).unwrap();
        std::fs::create_dir_all(root.join(".fluxloop")).unwrap();
        if let Some(url) = c.project_json_url {
            let pj = serde_json::json!({ "api_url": url });
            std::fs::write(root.join(".fluxloop/project.json"), pj.to_string()).unwrap();
        }
        let mut profiles = serde_json::Map::new();
        for name in ["default", "production", "staging"] {
            let mut p = serde_json::Map::new();
            if c.profile_token {
                p.insert("access_token".into(), format!("flx_at_{name}").into());
            }
            if let Some(e) = c.profile_endpoint {
                p.insert("api_endpoint".into(), format!("{e}/{name}").into());
            }
            profiles.insert(name.into(), p.into());
        }
        let mut doc = serde_json::json!({ "profiles": profiles });
        if let Some(d) = c.default_profile {
            doc["default_profile"] = d.into();
        }
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let text = if corrupt_credentials {
            "{ not json".to_string()
        } else {
            doc.to_string()
        };
        std::fs::write(home.join("credentials"), text).unwrap();
        let home_text = home.display().to_string();
        let mut env: Vec<(&str, &str)> = c.env.to_vec();
        env.push(("FLUXLOOP_HOME", &home_text));
        let env = Env::from_pairs(&env);
        let mut flags = Flags::new();
        if let Some(k) = c.flag_key {
            flags.insert("--api-key", k.to_string());
        }
        if let Some(p) = c.flag_profile {
            flags.insert("--profile", p.to_string());
        }
        if let Some(e) = c.flag_endpoint {
            flags.insert("--endpoint", e.to_string());
        }
        let settings = Settings::resolve(&Inputs {
            env: &env,
            cwd: root,
            flags: &flags,
            config_flag: None,
        });
        (dir, settings)
    }

    /// Runs resolution for a case: (credential value, its origin kind+name, endpoint, profile).
    fn resolve(c: &Case) -> (Result<(String, String)>, String, String) {
        let (_dir, s) = settings(c, false);
        let cred = s.credential.as_ref().map_err(Error::clone).map(|r| {
            let origin = match &r.credential.origin {
                Origin::KeyFile(_) => "key_file".to_string(),
                Origin::Profile { name, .. } => format!("profile {name}"),
                o => o.to_string(),
            };
            (r.credential.val.secret.expose().to_string(), origin)
        });
        (cred, s.endpoint().unwrap().val, s.profile().unwrap().val)
    }

    fn cred(c: &Case) -> (String, String) {
        resolve(c).0.unwrap()
    }

    #[test]
    fn credential_sources_in_order_every_pair() {
        // Each source alone, in priority order.
        let sources: Vec<(Case, &str, &str)> = vec![
            (
                Case {
                    flag_key: Some(KEY_A),
                    ..Default::default()
                },
                KEY_A,
                "--api-key",
            ),
            (
                Case {
                    env: vec![("FLUXLOOP_API_KEY", KEY_B)],
                    ..Default::default()
                },
                KEY_B,
                "environment variable FLUXLOOP_API_KEY",
            ),
            (
                Case {
                    env: vec![("FLUXLOOP_SYNC_API_KEY", KEY_F)],
                    ..Default::default()
                },
                KEY_F,
                "environment variable FLUXLOOP_SYNC_API_KEY",
            ),
            (
                Case {
                    env: vec![("FLUXLOOP_TOKEN", "flx_at_raw")],
                    ..Default::default()
                },
                "flx_at_raw",
                "environment variable FLUXLOOP_TOKEN",
            ),
            (
                Case {
                    key_file: Some(KEY_F),
                    ..Default::default()
                },
                KEY_F,
                "key_file",
            ),
            (
                Case {
                    profile_token: true,
                    ..Default::default()
                },
                "flx_at_default",
                "profile default",
            ),
        ];
        for (i, (alone, value, origin)) in sources.iter().enumerate() {
            assert_eq!(
                cred(alone),
                (value.to_string(), origin.to_string()),
                "source {i} alone"
            );
            // Against every lower source, in both orders of construction.
            for (lower, _, _) in &sources[i + 1..] {
                let mut both = lower.clone();
                both.flag_key = alone.flag_key.or(lower.flag_key);
                both.env = alone.env.iter().chain(lower.env.iter()).cloned().collect();
                both.key_file = alone.key_file.or(lower.key_file);
                both.profile_token = alone.profile_token || lower.profile_token;
                assert_eq!(
                    cred(&both).1,
                    origin.to_string(),
                    "source {i} must beat a lower one"
                );
            }
        }
    }

    #[test]
    fn nothing_found_is_no_credential() {
        let (r, _, _) = resolve(&Case::default());
        assert!(matches!(r, Err(Error::NoCredential { .. })));
    }

    #[test]
    fn invalid_key_is_rejected_even_if_a_profile_exists() {
        let (r, _, _) = resolve(&Case {
            env: vec![("FLUXLOOP_API_KEY", "nope")],
            profile_token: true,
            ..Default::default()
        });
        let e = r.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Invalid API key (from environment variable FLUXLOOP_API_KEY)"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn shadowed_sources_are_reported() {
        let (_dir, s) = settings(
            &Case {
                profile_token: true,
                env: vec![("FLUXLOOP_API_KEY", KEY_A), ("FLUXLOOP_TOKEN", "flx_at_x")],
                ..Default::default()
            },
            false,
        );
        let r = s.credential.unwrap();
        assert_eq!(r.shadowed, vec![Origin::Env("FLUXLOOP_TOKEN")]);
    }

    #[test]
    fn a_broken_credentials_file_does_not_matter_when_a_higher_source_wins() {
        // No FLUXLOOP_PROFILE either: the profile is never needed.
        let case = Case {
            env: vec![
                ("FLUXLOOP_API_KEY", KEY_A),
                ("FLUXLOOP_API_ENDPOINT", "https://e.example"),
            ],
            ..Default::default()
        };
        let (_dir, s) = settings(&case, true);
        assert_eq!(s.endpoint().unwrap().val, "https://e.example");
        assert_eq!(
            s.credential
                .as_ref()
                .unwrap()
                .credential
                .val
                .secret
                .expose(),
            KEY_A
        );
        assert!(!s.uses_credentials("endpoint"));
        assert!(!s.uses_credentials("credential"));
        // The profile itself does need it, and says what is wrong.
        assert!(s.uses_credentials("profile"));
        assert_eq!(s.profile().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn profile_sources_in_order() {
        let p = |c: Case| resolve(&c).2;
        assert_eq!(p(Case::default()), "default");
        assert_eq!(
            p(Case {
                default_profile: Some("production"),
                ..Default::default()
            }),
            "production"
        );
        assert_eq!(
            p(Case {
                default_profile: Some("production"),
                env: vec![("FLUXLOOP_PROFILE", "staging")],
                ..Default::default()
            }),
            "staging"
        );
        assert_eq!(
            p(Case {
                flag_profile: Some("production"),
                env: vec![("FLUXLOOP_PROFILE", "staging")],
                ..Default::default()
            }),
            "production"
        );
    }

    #[test]
    fn endpoint_sources_in_order_every_pair() {
        let levels: Vec<(Case, &str)> = vec![
            (
                Case {
                    flag_endpoint: Some("https://flag.example/"),
                    ..Default::default()
                },
                "https://flag.example",
            ),
            (
                Case {
                    env: vec![("FLUXLOOP_API_ENDPOINT", "https://env.example")],
                    ..Default::default()
                },
                "https://env.example",
            ),
            (
                Case {
                    env: vec![("FLUXLOOP_API_URL", "https://url.example")],
                    ..Default::default()
                },
                "https://url.example",
            ),
            (
                Case {
                    yaml_endpoint: Some("https://yaml.example"),
                    ..Default::default()
                },
                "https://yaml.example",
            ),
            (
                Case {
                    project_json_url: Some("https://pj.example"),
                    ..Default::default()
                },
                "https://pj.example",
            ),
            (
                Case {
                    profile_endpoint: Some("https://profile.example"),
                    ..Default::default()
                },
                "https://profile.example/default",
            ),
            (Case::default(), DEFAULT_ENDPOINT),
        ];
        for (i, (alone, want)) in levels.iter().enumerate() {
            assert_eq!(resolve(alone).1, *want, "level {i} alone");
            for (lower, _) in &levels[i + 1..] {
                let mut both = lower.clone();
                both.flag_endpoint = alone.flag_endpoint.or(lower.flag_endpoint);
                both.env = alone.env.iter().chain(lower.env.iter()).cloned().collect();
                both.yaml_endpoint = alone.yaml_endpoint.or(lower.yaml_endpoint);
                both.project_json_url = alone.project_json_url.or(lower.project_json_url);
                both.profile_endpoint = alone.profile_endpoint.or(lower.profile_endpoint);
                assert_eq!(resolve(&both).1, *want, "level {i} must beat a lower one");
            }
        }
    }

    #[test]
    fn the_selected_profile_gives_the_endpoint() {
        let c = Case {
            profile_endpoint: Some("https://p.example"),
            flag_profile: Some("staging"),
            ..Default::default()
        };
        assert_eq!(resolve(&c).1, "https://p.example/staging");
    }

    #[test]
    fn bad_endpoints_are_config_errors() {
        for url in ["ftp://x", "api.fluxloop.ai", "https://", "https://a b"] {
            let e = validate_endpoint(url, &Origin::Flag("--endpoint")).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{url}");
        }
        validate_endpoint("http://127.0.0.1:8787", &Origin::Default).unwrap();
    }
}
