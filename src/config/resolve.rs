//! Resolution of the profile, endpoint and credential (CLI.md §2): first match
//! wins, and each answer carries its origin.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::api::Endpoint;
use crate::auth::key::{self, KeyInput};
use crate::config::credentials::CredentialsFile;
use crate::config::project::{LoadedConfig, ProjectJson};
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

/// The profile, resolved only when a source needs it: a CI job with
/// `FLUXLOOP_API_KEY` and an endpoint never reads the credentials file,
/// which `default_profile` would need.
pub(crate) type LazyProfile<'a> = &'a dyn Fn() -> Result<Value<String>>;

/// Everything resolution reads, gathered once.
pub(crate) struct Sources<'a> {
    pub(crate) env: &'a Env,
    /// `--profile`.
    pub(crate) flag_profile: Option<&'a str>,
    /// `--api-key`.
    pub(crate) flag_api_key: Option<&'a str>,
    /// `--endpoint` / `--api-url`.
    pub(crate) flag_endpoint: Option<&'a str>,
    pub(crate) config: Option<&'a LoadedConfig>,
    pub(crate) project_json: Option<&'a (PathBuf, ProjectJson)>,
    /// Loaded only when a lower source is needed: a CI job with
    /// `FLUXLOOP_API_KEY` never reads (or trips over) a credentials file.
    pub(crate) credentials: &'a dyn Fn() -> Result<&'a CredentialsFile>,
}

/// `--profile` > `FLUXLOOP_PROFILE` > `default_profile` > `default`.
pub(crate) fn resolve_profile(s: &Sources<'_>) -> Result<Value<String>> {
    if let Some(p) = s.flag_profile {
        return Ok(Value::new(p.to_string(), Origin::Flag("--profile")));
    }
    if let Some(p) = s.env.get("FLUXLOOP_PROFILE")? {
        return Ok(Value::new(p.to_string(), Origin::Env("FLUXLOOP_PROFILE")));
    }
    let creds = (s.credentials)()?;
    if let Some(p) = creds
        .doc
        .default_profile
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        return Ok(Value::new(
            p.to_string(),
            Origin::CredentialsFile(creds.path.clone()),
        ));
    }
    Ok(Value::new(DEFAULT_PROFILE.to_string(), Origin::Default))
}

/// In order: `--endpoint`, `FLUXLOOP_API_ENDPOINT`, `FLUXLOOP_API_URL`,
/// `api.endpoint`, project.json `api_url`, the profile's `api_endpoint`, the
/// hosted platform. A trailing `/` is dropped.
pub(crate) fn resolve_endpoint(s: &Sources<'_>, profile: LazyProfile<'_>) -> Result<Value<String>> {
    let found = find_endpoint(s, profile)?;
    let parsed = parse_endpoint(&found.val, &found.origin)?;
    Ok(Value::new(parsed.to_string(), found.origin))
}

fn find_endpoint(s: &Sources<'_>, profile: LazyProfile<'_>) -> Result<Value<String>> {
    if let Some(e) = s.flag_endpoint {
        return Ok(Value::new(e.to_string(), Origin::Flag("--endpoint")));
    }
    // `--profile NAME` picks that profile's platform over the environment,
    // as `aws --profile` does.
    if let Some(name) = s.flag_profile {
        if let Some(e) = profile_endpoint(s, name)? {
            return Ok(e);
        }
    }
    for name in ["FLUXLOOP_API_ENDPOINT", "FLUXLOOP_API_URL"] {
        if let Some(e) = s.env.get(name)? {
            return Ok(Value::new(e.to_string(), Origin::Env(name)));
        }
    }
    if let Some(c) = s.config {
        if let Some(e) = c.config.api.endpoint.as_deref().filter(|e| !e.is_empty()) {
            return Ok(Value::new(
                e.to_string(),
                Origin::ProjectConfig {
                    path: c.path.clone(),
                    key: "api.endpoint",
                },
            ));
        }
    }
    if let Some((path, pj)) = s.project_json {
        if let Some(e) = pj.api_url.as_deref().filter(|e| !e.is_empty()) {
            return Ok(Value::new(e.to_string(), Origin::ProjectJson(path.clone())));
        }
    }
    let profile = profile()?;
    if let Some(e) = profile_endpoint(s, &profile.val)? {
        return Ok(e);
    }
    Ok(Value::new(DEFAULT_ENDPOINT.to_string(), Origin::Default))
}

/// The stored `api_endpoint` of profile `name`, if it has one.
fn profile_endpoint(s: &Sources<'_>, name: &str) -> Result<Option<Value<String>>> {
    let creds = (s.credentials)()?;
    Ok(creds
        .profile(name)
        .and_then(|p| p.api_endpoint.as_deref())
        .filter(|e| !e.is_empty())
        .map(|e| {
            Value::new(
                e.to_string(),
                Origin::Profile {
                    name: name.to_string(),
                    path: creds.path.clone(),
                },
            )
        }))
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
pub(crate) struct Resolved {
    pub(crate) credential: Value<Credential>,
    /// Lower-priority sources that were also set (for `auth status`).
    pub(crate) shadowed: Vec<Origin>,
}

/// In order: `--api-key`, `FLUXLOOP_API_KEY`, `FLUXLOOP_SYNC_API_KEY`,
/// `FLUXLOOP_TOKEN`, `api.key_file`, the profile's login. API keys are
/// format-checked here, before any network use.
pub(crate) fn resolve_credential(s: &Sources<'_>, profile: LazyProfile<'_>) -> Result<Resolved> {
    let mut found: Vec<Value<Credential>> = Vec::new();
    let mut first_error: Option<Error> = None;
    // Gather every source in order; the first is used, the others are reported
    // as shadowed. Only the first one's errors matter.
    let mut push =
        |r: Result<Option<Value<Credential>>>, found: &mut Vec<Value<Credential>>| match r {
            Ok(Some(v)) => found.push(v),
            Ok(None) => {}
            Err(e) => {
                if found.is_empty() && first_error.is_none() {
                    first_error = Some(e);
                }
            }
        };
    let typed_key = |raw: &str, origin: Origin| -> Result<Option<Value<Credential>>> {
        let secret = key::api_key_from(raw, KeyInput::Typed, &origin.to_string())?;
        Ok(Some(api_key_value(secret, origin)))
    };

    if let Some(k) = s.flag_api_key {
        push(typed_key(k, Origin::Flag("--api-key")), &mut found);
    }
    // An explicit `--profile` means that profile's login, over every
    // credential in the environment (the caller notes what it ignored).
    if let Some(name) = s.flag_profile {
        let flagged = Value::new(name.to_string(), Origin::Flag("--profile"));
        match profile_login(s, &flagged) {
            Ok(Some(v)) => push(Ok(Some(v)), &mut found),
            Ok(None) => {
                if found.is_empty() {
                    return Err(Error::NotFound {
                        what: format!("a login in profile {name} (from --profile)"),
                        hint: Some(format!("run `fluxloop auth login --profile {name}`, or leave out --profile to use FLUXLOOP_API_KEY")),
                    });
                }
            }
            Err(e) => push(Err(e), &mut found),
        }
    }
    for name in ["FLUXLOOP_API_KEY", "FLUXLOOP_SYNC_API_KEY"] {
        match s.env.get(name) {
            Ok(Some(k)) => push(typed_key(k, Origin::Env(name)), &mut found),
            Ok(None) => {}
            Err(_) => push(
                Err(Error::InvalidApiKey {
                    origin: format!("environment variable {name}"),
                    problem: "the value is not valid UTF-8".into(),
                    hint: "an API key is plain ASCII: flx_api_… or flx_sa_…".into(),
                }),
                &mut found,
            ),
        }
    }
    match s.env.get("FLUXLOOP_TOKEN") {
        Ok(Some(t)) if token_problem(t.trim()).is_some() => push(
            Err(Error::InvalidCredential {
                is_key: false,
                origin: "environment variable FLUXLOOP_TOKEN".into(),
                detail: token_problem(t.trim()).unwrap_or_default(),
            }),
            &mut found,
        ),
        Ok(Some(t)) => push(
            Ok(Some(Value::new(
                Credential {
                    secret: Secret::new(t.trim()),
                    kind: CredentialKind::Token,
                },
                Origin::Env("FLUXLOOP_TOKEN"),
            ))),
            &mut found,
        ),
        Ok(None) => {}
        Err(e) => push(Err(e), &mut found),
    }
    if let Some(c) = s.config {
        if let Some(kf) = c.config.api.key_file.as_deref().filter(|k| !k.is_empty()) {
            push(read_key_file(s.env, c, kf), &mut found);
        }
    }
    if found.is_empty() && first_error.is_none() && s.flag_profile.is_none() {
        match profile().and_then(|p| profile_login(s, &p).map(|l| (l, p))) {
            Ok((Some(login), _)) => found.push(login),
            Ok((None, profile)) => return Err(no_login(s, &profile)),
            Err(e) => first_error = Some(e),
        }
    }
    if let Some(e) = first_error.filter(|_| found.is_empty()) {
        return Err(e);
    }
    let mut iter = found.into_iter();
    let Some(credential) = iter.next() else {
        return Err(Error::NoCredential { profiles: vec![] });
    };
    Ok(Resolved {
        credential,
        shadowed: iter.map(|v| v.origin).collect(),
    })
}

/// The stored login of `profile`, if it holds one.
fn profile_login(s: &Sources<'_>, profile: &Value<String>) -> Result<Option<Value<Credential>>> {
    let creds = (s.credentials)()?;
    let Some(p) = creds.profile(&profile.val).filter(|p| p.has_token()) else {
        return Ok(None);
    };
    if let Some(problem) = token_problem(p.access_token.as_deref().unwrap_or_default()) {
        return Err(Error::InvalidCredential {
            is_key: false,
            origin: format!("profile {} in {}", profile.val, creds.path.display()),
            detail: problem,
        });
    }
    Ok(Some(Value::new(
        Credential {
            secret: Secret::new(p.access_token.clone().unwrap_or_default()),
            kind: CredentialKind::Login {
                profile: profile.val.clone(),
                issuer: p.api_endpoint.clone().filter(|e| !e.is_empty()),
                refresh_token: p.refresh_token.clone().map(Secret::new),
                expires_at: crate::auth::login::parse_time(p.expires_at.as_deref()),
                user_email: p.user_email.clone(),
            },
        },
        Origin::Profile {
            name: profile.val.clone(),
            path: creds.path.clone(),
        },
    )))
}

/// No credential anywhere: say which profiles exist and how to pick one.
fn no_login(s: &Sources<'_>, profile: &Value<String>) -> Error {
    let known: Vec<String> = (s.credentials)()
        .map(|c| {
            c.doc
                .profiles
                .iter()
                .filter(|(_, p)| p.has_token())
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default();
    if known.is_empty() {
        return Error::NoCredential { profiles: vec![] };
    }
    if profile.origin != Origin::Default && !known.contains(&profile.val) {
        let path = (s.credentials)()
            .map(|c| c.path.display().to_string())
            .unwrap_or_default();
        return Error::NotFound {
            what: format!("a login in profile {} (from {}) in {path}", profile.val, profile.origin),
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

fn read_key_file(
    env: &Env,
    config: &LoadedConfig,
    raw_path: &str,
) -> Result<Option<Value<Credential>>> {
    let path = config.dir().join(env.expand_tilde(raw_path));
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
    Ok(Some(api_key_value(secret, origin)))
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
    use crate::config::credentials::{CredentialsDoc, Layout, StoredProfile};
    use crate::config::project::ProjectConfig;
    use std::path::Path;

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

    struct Fixture {
        _dir: tempfile::TempDir,
        env: Env,
        config: LoadedConfig,
        project_json: (PathBuf, ProjectJson),
        creds: CredentialsFile,
    }

    fn fixture(c: &Case) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        if let Some(k) = c.key_file {
            std::fs::write(dir.path().join("key.txt"), format!("{k}\n")).unwrap();
        }
        let mut config = ProjectConfig::default();
        config.api.endpoint = c.yaml_endpoint.map(String::from);
        config.api.key_file = c.key_file.map(|_| "key.txt".to_string());
        let mut doc = CredentialsDoc {
            default_profile: c.default_profile.map(String::from),
            ..Default::default()
        };
        for name in ["default", "production", "staging"] {
            doc.profiles.insert(
                name.into(),
                StoredProfile {
                    access_token: c.profile_token.then(|| format!("flx_at_{name}")),
                    api_endpoint: c.profile_endpoint.map(|e| format!("{e}/{name}")),
                    ..Default::default()
                },
            );
        }
        Fixture {
            env: Env::from_pairs(&c.env),
            config: LoadedConfig {
                path: dir.path().join("fluxloop.yaml"),
                config,
            },
            project_json: (
                dir.path().join(".fluxloop/project.json"),
                ProjectJson {
                    api_url: c.project_json_url.map(String::from),
                    ..Default::default()
                },
            ),
            creds: CredentialsFile {
                path: dir.path().join("credentials"),
                layout: Layout::Profiles,
                doc,
                warnings: vec![],
            },
            _dir: dir,
        }
    }

    /// Runs resolution for a case: (credential value, its origin kind+name, endpoint, profile).
    fn resolve(c: &Case) -> (Result<(String, String)>, String, String) {
        let f = fixture(c);
        let creds = &f.creds;
        let load = || -> Result<&CredentialsFile> { Ok(creds) };
        let s = Sources {
            env: &f.env,
            flag_profile: c.flag_profile,
            flag_api_key: c.flag_key,
            flag_endpoint: c.flag_endpoint,
            config: Some(&f.config),
            project_json: Some(&f.project_json),
            credentials: &load,
        };
        let profile = resolve_profile(&s).unwrap();
        let lazy = || resolve_profile(&s);
        let endpoint = resolve_endpoint(&s, &lazy).unwrap();
        let cred = resolve_credential(&s, &lazy).map(|r| {
            let origin = match &r.credential.origin {
                Origin::KeyFile(_) => "key_file".to_string(),
                Origin::Profile { name, .. } => format!("profile {name}"),
                o => o.to_string(),
            };
            (r.credential.val.secret.expose().to_string(), origin)
        });
        (cred, endpoint.val, profile.val)
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
        let f = fixture(&Case {
            profile_token: true,
            ..Default::default()
        });
        let env = Env::from_pairs(&[("FLUXLOOP_API_KEY", KEY_A), ("FLUXLOOP_TOKEN", "flx_at_x")]);
        let creds = &f.creds;
        let load = || -> Result<&CredentialsFile> { Ok(creds) };
        let s = Sources {
            env: &env,
            flag_profile: None,
            flag_api_key: None,
            flag_endpoint: None,
            config: None,
            project_json: None,
            credentials: &load,
        };
        let r = resolve_credential(&s, &|| resolve_profile(&s)).unwrap();
        assert_eq!(r.shadowed, vec![Origin::Env("FLUXLOOP_TOKEN")]);
    }

    #[test]
    fn credentials_file_is_not_read_when_a_higher_source_wins() {
        // No FLUXLOOP_PROFILE either: the profile is never needed.
        let env = Env::from_pairs(&[
            ("FLUXLOOP_API_KEY", KEY_A),
            ("FLUXLOOP_API_ENDPOINT", "https://e.example"),
        ]);
        let load = || -> Result<&CredentialsFile> { panic!("credentials file read") };
        let s = Sources {
            env: &env,
            flag_profile: None,
            flag_api_key: None,
            flag_endpoint: None,
            config: None,
            project_json: None,
            credentials: &load,
        };
        let lazy = || resolve_profile(&s);
        resolve_endpoint(&s, &lazy).unwrap();
        resolve_credential(&s, &lazy).unwrap();
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
        let _ = Path::new(".");
    }
}
