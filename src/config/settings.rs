//! Resolution: every declared setting ([`super::registry`]) resolved once per
//! command, before any work, into [`Settings`]. Each value carries its
//! origin, and every lower source that was also set is kept as shadowed.
//!
//! A problem with one setting (a bad variable, an unreadable credentials
//! file) is kept with that setting and reported only by a command that uses
//! it: `fluxloop test --skip-pull --skip-upload` needs no credential, and a
//! CI job with `FLUXLOOP_API_KEY` never trips over a credentials file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::net::{proxy_for, Proxies};
use crate::api::{Endpoint, NetOptions};
use crate::config::credentials::CredentialsFile;
use crate::config::project::{self, LoadedConfig, ProjectJson};
use crate::config::registry::{self, Decl, Fallback, ProfileField, Source};
use crate::config::resolve::{self, Resolved};
use crate::config::{Env, Origin, Value};
use crate::error::{Error, Result};

/// Flag values as the command line gave them, by flag name (`--endpoint`).
pub(crate) type Flags = BTreeMap<&'static str, String>;

/// A value as found, before its type is checked.
pub(crate) type Raw = Value<String>;

/// What resolution reads.
pub(crate) struct Inputs<'a> {
    pub(crate) env: &'a Env,
    pub(crate) cwd: &'a Path,
    pub(crate) flags: &'a Flags,
    /// `--config`.
    pub(crate) config_flag: Option<&'a Path>,
}

/// One setting as resolved.
pub(crate) struct Entry {
    pub(crate) decl: &'static Decl,
    /// The value in effect (for an additive setting, every one), or the
    /// problem with the first source that was set.
    pub(crate) found: Result<Vec<Raw>>,
    /// Lower sources that were also set.
    pub(crate) shadowed: Vec<Raw>,
    /// Whether finding the value needed the credentials file, whose
    /// warnings are then due.
    pub(crate) used_credentials: bool,
}

impl Entry {
    /// The value in effect, else the default; `None` when neither.
    pub(crate) fn value(&self) -> Result<Option<Raw>> {
        match &self.found {
            Ok(v) if !v.is_empty() => Ok(v.first().cloned()),
            Ok(_) => Ok(match self.decl.fallback {
                Fallback::Value(v) => Some(Value::new(v.to_string(), Origin::Default)),
                Fallback::Unset(_) => None,
            }),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Every setting of one command, resolved.
pub(crate) struct Settings {
    /// `$FLUXLOOP_HOME`, else `~/.fluxloop`.
    pub(crate) home: Result<PathBuf>,
    /// `fluxloop.yaml`: `--config`, else the nearest one upward.
    pub(crate) config: Result<Option<LoadedConfig>>,
    /// `.fluxloop/project.json` of the workspace.
    pub(crate) project_json: Result<Option<(PathBuf, ProjectJson)>>,
    /// The workspace root (CLI.md §4).
    pub(crate) workspace: Result<PathBuf>,
    /// The credentials file, read once.
    pub(crate) credentials: Result<CredentialsFile>,
    /// The credential in effect (the `credential` entry, typed).
    pub(crate) credential: Result<Resolved>,
    entries: Vec<Entry>,
}

impl Settings {
    /// Resolves every declared setting.
    pub(crate) fn resolve(inputs: &Inputs<'_>) -> Settings {
        let home = inputs.env.fluxloop_home().map(|home| {
            if home.is_absolute() {
                home
            } else {
                inputs.cwd.join(home)
            }
        });
        let config = project::find_config(inputs.config_flag, inputs.cwd);
        let workspace = match (&config, &home) {
            (Ok(Some(c)), _) => Ok(c.dir().to_path_buf()),
            (Err(e), _) | (Ok(None), Err(e)) => Err(e.clone()),
            (Ok(None), Ok(home)) => Ok(project::workspace_root(inputs.cwd, home)),
        };
        let project_json = match &workspace {
            Ok(root) => project::load_project_json(root),
            Err(e) => Err(e.clone()),
        };
        let credentials = match &home {
            Ok(home) => CredentialsFile::load(home),
            Err(e) => Err(e.clone()),
        };
        let mut settings = Settings {
            home,
            config,
            project_json,
            workspace,
            credentials,
            credential: Err(Error::NoCredential { profiles: vec![] }),
            entries: Vec::new(),
        };
        let sources = Reader {
            inputs,
            settings: &settings,
        };
        let mut entries = Vec::new();
        for decl in registry::SETTINGS {
            let profile = entries.iter().find(|e: &&Entry| e.decl.key == "profile");
            entries.push(sources.entry(decl, profile));
        }
        let credential = resolve::resolve_credential(&sources, &entries);
        settings.entries = entries;
        settings.credential = credential;
        settings
    }

    /// Every entry, in declaration order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of `key`.
    pub(crate) fn entry(&self, key: &str) -> &Entry {
        let decl = registry::get(key);
        self.entries
            .iter()
            .find(|e| std::ptr::eq(e.decl, decl))
            .unwrap_or_else(|| panic!("setting {key} was not resolved"))
    }

    /// The value of `key` (or its default).
    pub(crate) fn raw(&self, key: &str) -> Result<Option<Raw>> {
        self.entry(key).value()
    }

    /// The value of `key`, converted by `parse`; an error names the value
    /// and where it came from, with `hint` (`{name}` is the variable).
    pub(crate) fn parsed<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        hint: &str,
    ) -> Result<Option<Value<T>>> {
        let Some(raw) = self.raw(key)? else {
            return Ok(None);
        };
        match parse(raw.val.trim()) {
            Ok(v) => Ok(Some(Value::new(v, raw.origin))),
            Err(why) => Err(bad_value(&raw, &why, hint)),
        }
    }

    /// The profile in effect.
    pub(crate) fn profile(&self) -> Result<Value<String>> {
        self.raw("profile")?
            .ok_or_else(|| Error::config("no profile", None))
    }

    /// The endpoint in effect, checked and without a trailing `/`.
    pub(crate) fn endpoint(&self) -> Result<Value<String>> {
        let found = self
            .raw("endpoint")?
            .ok_or_else(|| Error::config("no endpoint", None))?;
        let parsed = resolve::parse_endpoint(&found.val, &found.origin)?;
        Ok(Value::new(parsed.to_string(), found.origin))
    }

    /// A setting that is text, trimmed: the first source whose value is not
    /// blank (a blank `--scenario ""` or `scenario:` counts as unset).
    pub(crate) fn text(&self, key: &str) -> Result<Option<Value<String>>> {
        let entry = self.entry(key);
        let found = entry.found.clone()?;
        Ok(found
            .iter()
            .chain(&entry.shadowed)
            .map(|v| Value::new(v.val.trim().to_string(), v.origin.clone()))
            .find(|v| !v.val.is_empty()))
    }

    /// Seconds, as `http_timeout` and `connect_timeout` take them.
    fn request_seconds(&self, key: &str) -> Result<Duration> {
        let v = self.parsed(
            key,
            |v| {
                v.parse::<f64>()
                    .map_err(|_| "is not a number of seconds".to_string())
                    .and_then(project::limits::request_seconds)
                    .map(Duration::from_secs_f64)
            },
            "set {name} to seconds, e.g. 30",
        )?;
        Ok(v.expect("has a default").val)
    }

    /// Timeouts, retries, trust and proxy for `endpoint`.
    pub(crate) fn net_options(
        &self,
        endpoint: &Endpoint,
        env: &Env,
        cwd: &Path,
    ) -> Result<NetOptions> {
        let retries = self.parsed(
            "http_retries",
            |v| {
                let n: u64 = v.parse().map_err(|_| "is not a whole number".to_string())?;
                project::limits::retries(n)
            },
            "set it to the number of retries, e.g. 4",
        )?;
        let backoff = self.parsed(
            "retry_backoff_ms",
            |v| {
                v.parse::<u64>()
                    .map_err(|_| "is not a whole number of milliseconds".to_string())
            },
            "set it to milliseconds, e.g. 500",
        )?;
        let mut ca_files = Vec::new();
        for ca in self.paths("ca_cert", env, cwd)? {
            if ca.origin == Origin::Flag("--ca-cert") && !ca.val.is_file() {
                return Err(Error::MissingFile {
                    path: ca.val,
                    what: "CA certificate (--ca-cert)",
                });
            }
            ca_files.push(ca.val);
        }
        let timeout = self.request_seconds("http_timeout")?;
        Ok(NetOptions {
            connect_timeout: self.request_seconds("connect_timeout")?,
            timeout,
            retries: retries.expect("has a default").val,
            backoff_base: Duration::from_millis(backoff.expect("has a default").val.min(60_000)),
            // A request must not outlive the retry budget by much.
            retry_budget: NetOptions::default()
                .retry_budget
                .max(timeout.saturating_mul(2)),
            ca_files,
            ca_dir: self.raw("ca_dir")?.map(|v| PathBuf::from(v.val)),
            proxy: proxy_for(&self.proxies()?, endpoint)?,
        })
    }

    /// The proxy variables that won, for `proxy_for`.
    pub(crate) fn proxies(&self) -> Result<Proxies> {
        let var = |key: &str| -> Result<Option<(String, &'static str)>> {
            Ok(self.raw(key)?.map(|v| match v.origin {
                Origin::Env(name) => (v.val, name),
                _ => (v.val, "proxy"),
            }))
        };
        Ok(Proxies {
            https: var("https_proxy")?,
            http: var("http_proxy")?,
            // Only a hint: a value that is not UTF-8 matches nothing.
            no_proxy: self.raw("no_proxy").ok().flatten().map(|v| v.val),
        })
    }

    /// The settings of `env` alone, outside any workspace (for tests).
    #[cfg(test)]
    pub(crate) fn of_env(env: &Env) -> Settings {
        Settings::resolve(&Inputs {
            env,
            cwd: Path::new("/"),
            flags: &Flags::new(),
            config_flag: None,
        })
    }

    /// Paths from `key`, relative to where each came from: the file's
    /// directory for `fluxloop.yaml` (with `~/` expanded), the working
    /// directory for a flag; a variable's value as it is.
    pub(crate) fn paths(&self, key: &str, env: &Env, cwd: &Path) -> Result<Vec<Value<PathBuf>>> {
        let entry = self.entry(key);
        let found = entry.found.clone()?;
        Ok(found
            .into_iter()
            .map(|raw| {
                let base = match &raw.origin {
                    Origin::ProjectConfig { path, .. } => {
                        path.parent().unwrap_or(Path::new(".")).to_path_buf()
                    }
                    _ => cwd.to_path_buf(),
                };
                let path = match raw.origin {
                    Origin::Env(_) => PathBuf::from(&raw.val),
                    Origin::ProjectConfig { .. } => base.join(env.expand_tilde(&raw.val)),
                    _ => base.join(&raw.val),
                };
                Value::new(path, raw.origin)
            })
            .collect())
    }

    /// Whether a value in use was read from the credentials file.
    pub(crate) fn uses_credentials(&self, key: &str) -> bool {
        self.entry(key).used_credentials
    }
}

/// `NAME="value" is not …`, or the value and its origin for a file.
fn bad_value(raw: &Raw, why: &str, hint: &str) -> Error {
    match &raw.origin {
        Origin::Env(name) => Error::config(
            format!("{name}={:?} {why}", raw.val),
            Some(hint.replace("{name}", name)),
        ),
        origin => Error::config(format!("{:?} (from {origin}) {why}", raw.val), None),
    }
}

/// Reads sources for the walk.
pub(crate) struct Reader<'a> {
    pub(crate) inputs: &'a Inputs<'a>,
    pub(crate) settings: &'a Settings,
}

impl Reader<'_> {
    fn entry(&self, decl: &'static Decl, profile: Option<&Entry>) -> Entry {
        let mut found: Vec<Raw> = Vec::new();
        let mut shadowed = Vec::new();
        let mut used_credentials = false;
        for source in decl.sources {
            let done = !found.is_empty() && !decl.additive;
            let from_file = match source {
                Source::DefaultProfile | Source::Profile(_) => true,
                Source::FlagProfile(_) => self.inputs.flags.contains_key("--profile"),
                _ => false,
            };
            if from_file && !done {
                used_credentials = true;
            }
            if matches!(source, Source::Profile(_)) && !done {
                used_credentials |= profile.is_some_and(|p| p.used_credentials);
            }
            match self.read(source, profile) {
                Ok(Some(raw)) if done => shadowed.push(raw),
                Ok(Some(raw)) => found.push(raw),
                Ok(None) => {}
                // A lower source's problem does not matter once a value is found.
                Err(_) if done => {}
                Err(e) => {
                    return Entry {
                        decl,
                        found: Err(e),
                        shadowed,
                        used_credentials,
                    }
                }
            }
        }
        Entry {
            decl,
            found: Ok(found),
            shadowed,
            used_credentials,
        }
    }

    /// One source's value for a setting, if it has one.
    pub(crate) fn read(&self, source: &Source, profile: Option<&Entry>) -> Result<Option<Raw>> {
        let inputs = self.inputs;
        match *source {
            Source::Flag(name) => Ok(inputs
                .flags
                .get(name)
                .map(|v| Value::new(v.clone(), Origin::Flag(name)))),
            Source::Env(name) => Ok(inputs
                .env
                .get(name)?
                .map(|v| Value::new(v.to_string(), Origin::Env(name)))),
            Source::Yaml(key) => {
                let Some(c) = self.settings.config.as_ref().map_err(Error::clone)? else {
                    return Ok(None);
                };
                Ok(c.scalar(key).map(|v| {
                    Value::new(
                        v,
                        Origin::ProjectConfig {
                            path: c.path.clone(),
                            key,
                        },
                    )
                }))
            }
            Source::ProjectJson(field) => {
                let Some((path, pj)) = self.settings.project_json.as_ref().map_err(Error::clone)?
                else {
                    return Ok(None);
                };
                let v = match field {
                    "api_url" => pj.api_url.as_deref(),
                    "project_id" => pj.project_id.as_deref(),
                    other => panic!("project.json has no field {other} a setting reads"),
                };
                Ok(v.filter(|v| !v.trim().is_empty())
                    .map(|v| Value::new(v.to_string(), Origin::ProjectJson(path.clone()))))
            }
            Source::DefaultProfile => {
                let creds = self.credentials()?;
                Ok(creds
                    .doc
                    .default_profile
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        Value::new(p.to_string(), Origin::CredentialsFile(creds.path.clone()))
                    }))
            }
            Source::FlagProfile(field) => match inputs.flags.get("--profile") {
                Some(name) => self.profile_field(name, field),
                None => Ok(None),
            },
            Source::Profile(field) => {
                let profile = profile
                    .map(Entry::value)
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| Error::config("no profile", None))?;
                self.profile_field(&profile.val, field)
            }
        }
    }

    pub(crate) fn credentials(&self) -> Result<&CredentialsFile> {
        self.settings.credentials.as_ref().map_err(Error::clone)
    }

    /// A field of the stored profile `name`.
    fn profile_field(&self, name: &str, field: ProfileField) -> Result<Option<Raw>> {
        let creds = self.credentials()?;
        let Some(p) = creds.profile(name) else {
            return Ok(None);
        };
        let v = match field {
            ProfileField::Endpoint => p.api_endpoint.as_deref().filter(|e| !e.is_empty()),
            ProfileField::Login => p
                .has_token()
                .then(|| p.access_token.as_deref().unwrap_or("")),
        };
        Ok(v.map(|v| {
            Value::new(
                v.to_string(),
                Origin::Profile {
                    name: name.to_string(),
                    path: creds.path.clone(),
                },
            )
        }))
    }
}
