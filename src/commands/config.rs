//! `config set/get/list`: the default profile, the profile's endpoint, and
//! every declared setting (config/registry.rs) with its origin.

use serde::Serialize;

use crate::cli::ConfigCommand;
use crate::config::credentials::CredentialsFile;
use crate::config::registry::{self, Decl, Fallback};
use crate::config::resolve::{validate_endpoint, CredentialKind, DEFAULT_PROFILE};
use crate::config::{Origin, Value};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::output::Outcome;

pub(crate) fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<Outcome> {
    match cmd {
        ConfigCommand::Set { key, value } => set(ctx, &key, &value),
        ConfigCommand::Unset { key } => unset(ctx, &key),
        ConfigCommand::Get { key } => get(ctx, &key),
        ConfigCommand::List => list(ctx),
    }
}

const SETTABLE: &str = "profile, endpoint";

/// The result of `config set`.
#[derive(Serialize)]
pub(crate) struct SetReport {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) file: String,
    #[serde(skip)]
    pub(crate) note: Option<String>,
}

fn set(ctx: &Ctx, key: &str, value: &str) -> Result<Outcome> {
    // Resolved before the lock: it may read the credentials file itself.
    let profile = match key {
        "endpoint" | "api_endpoint" => Some(ctx.profile()?),
        _ => None,
    };
    let (outcome, warning) = ctx.update_credentials(|file| {
        let done = set_in(file, key, value, profile.as_ref())?;
        Ok((done, true))
    })?;
    if let Some(w) = warning {
        ctx.out.warn(&w);
    }
    Ok(outcome)
}

fn set_in(
    file: &mut CredentialsFile,
    key: &str,
    value: &str,
    profile: Option<&Value<String>>,
) -> Result<(Outcome, Option<String>)> {
    let mut note = None;
    let mut warning = None;
    let key_name = match key {
        "profile" | "default_profile" => {
            if value.trim().is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::config(
                    format!("invalid profile name {value:?}"),
                    Some("a profile name is one word, e.g. production or staging".into()),
                ));
            }
            if !file.doc.profiles.contains_key(value) {
                let known: Vec<&str> = file.doc.profiles.keys().map(String::as_str).collect();
                warning = Some(format!(
                    "profile {value} is not in {} (known: {}); log in to it with `fluxloop auth login --profile {value}`",
                    file.path.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ));
            }
            file.doc.default_profile = Some(value.to_string());
            "profile"
        }
        "endpoint" | "api_endpoint" => {
            let url = value.trim_end_matches('/');
            validate_endpoint(url, &Origin::Flag("config set endpoint"))?;
            let profile = profile.map(|p| p.val.as_str()).unwrap_or(DEFAULT_PROFILE);
            file.profile_mut(profile).api_endpoint = Some(url.to_string());
            note = Some(format!("(for profile {profile})"));
            "endpoint"
        }
        other => {
            return Err(Error::config(
                format!("unknown setting '{other}' for config set"),
                Some(format!("settable keys: {SETTABLE}")),
            ))
        }
    };
    let report = SetReport {
        key: key_name.to_string(),
        value: value.trim_end_matches('/').to_string(),
        file: file.path.display().to_string(),
        note,
    };
    Ok((Outcome::ok(report), warning))
}

/// The result of `config unset`.
#[derive(Serialize)]
pub(crate) struct UnsetReport {
    pub(crate) key: &'static str,
    /// The value removed; `None` when it was not set.
    pub(crate) removed: Option<String>,
    pub(crate) file: String,
    #[serde(skip)]
    pub(crate) scope: String,
}

fn unset(ctx: &Ctx, key: &str) -> Result<Outcome> {
    let profile = match key {
        "endpoint" | "api_endpoint" => Some(ctx.profile()?),
        "profile" | "default_profile" => None,
        other => {
            return Err(Error::config(
                format!("unknown setting '{other}' for config unset"),
                Some(format!("keys: {SETTABLE}")),
            ))
        }
    };
    ctx.update_credentials(|file| {
        let (key, removed, scope) = match &profile {
            Some(p) => (
                "endpoint",
                file.doc
                    .profiles
                    .get_mut(&p.val)
                    .and_then(|stored| stored.api_endpoint.take()),
                format!(" of profile {}", p.val),
            ),
            None => ("profile", file.doc.default_profile.take(), String::new()),
        };
        let changed = removed.is_some();
        let report = UnsetReport {
            key,
            removed,
            file: file.path.display().to_string(),
            scope,
        };
        Ok((Outcome::ok(report), changed))
    })
}

/// One effective setting.
#[derive(Serialize, Clone)]
pub(crate) struct Setting {
    pub(crate) key: &'static str,
    pub(crate) value: Option<String>,
    pub(crate) origin: String,
    pub(crate) origin_kind: &'static str,
    /// What the setting is.
    pub(crate) about: &'static str,
    /// Lower sources that were also set, which this value beats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) shadowed: Vec<Shadowed>,
}

/// A value a higher source beat.
#[derive(Serialize, Clone)]
pub(crate) struct Shadowed {
    pub(crate) value: String,
    pub(crate) origin: String,
    pub(crate) origin_kind: &'static str,
}

impl Setting {
    fn new<T: ToString>(key: &'static str, v: Value<T>) -> Self {
        Setting {
            key,
            value: Some(v.val.to_string()),
            origin: v.origin.to_string(),
            origin_kind: v.origin.kind(),
            about: registry::get(key).about,
            shadowed: vec![],
        }
    }

    fn missing(key: &'static str, why: String) -> Self {
        Setting {
            key,
            value: None,
            origin: why,
            origin_kind: "none",
            about: registry::get(key).about,
            shadowed: vec![],
        }
    }
}

/// `config get KEY`: the value alone.
#[derive(Serialize)]
pub(crate) struct GetReport {
    #[serde(flatten)]
    pub(crate) setting: Setting,
}

/// `config list`.
#[derive(Serialize)]
pub(crate) struct ListReport {
    pub(crate) settings: Vec<Setting>,
}

/// Every declared setting (config/registry.rs), with its origin.
fn settings(ctx: &Ctx) -> Result<Vec<Setting>> {
    let mut out = Vec::new();
    for entry in ctx.settings.entries() {
        let key = entry.decl.key;
        let mut setting = match key {
            "profile" => Setting::new(key, ctx.profile()?),
            "endpoint" => Setting::new(key, ctx.endpoint()?),
            "credential" => credential(ctx),
            "config_file" => config_file(ctx)?,
            "credentials_file" => credentials_file(ctx)?,
            "workspace" => Setting::new(
                key,
                Value::new(ctx.workspace_root()?.display().to_string(), Origin::Default),
            ),
            _ => match entry.value() {
                Ok(Some(v)) => Setting::new(key, v),
                Ok(None) => Setting::missing(key, unset_text(entry.decl)),
                Err(e) => Setting::missing(key, format!("error: {e}")),
            },
        };
        // A secret's other values are not shown, even masked.
        if !entry.decl.secret {
            setting.shadowed = entry
                .shadowed
                .iter()
                .map(|v| Shadowed {
                    value: v.val.clone(),
                    origin: v.origin.to_string(),
                    origin_kind: v.origin.kind(),
                })
                .collect();
        }
        out.push(setting);
    }
    Ok(out)
}

fn unset_text(decl: &Decl) -> String {
    match decl.fallback {
        Fallback::Unset(why) => why.to_string(),
        Fallback::Value(v) => v.to_string(),
    }
}

fn credential(ctx: &Ctx) -> Setting {
    match ctx.credential() {
        Ok(r) => {
            let c = &r.credential;
            let kind = match &c.val.kind {
                CredentialKind::ApiKey => "API key",
                CredentialKind::Token => "access token",
                CredentialKind::Login { .. } => "login",
                CredentialKind::Oidc(o) => {
                    let shown = format!("exchanged when used (audience {})", o.audience);
                    return Setting::new("credential", Value::new(shown, c.origin.clone()));
                }
            };
            Setting::new(
                "credential",
                Value::new(
                    format!("{} ({kind})", c.val.secret.masked()),
                    c.origin.clone(),
                ),
            )
        }
        Err(Error::NoCredential { .. }) => Setting::missing("credential", "none found".into()),
        Err(e) => Setting::missing("credential", format!("error: {e}")),
    }
}

fn config_file(ctx: &Ctx) -> Result<Setting> {
    Ok(match ctx.config()? {
        Some(c) => Setting::new(
            "config_file",
            Value::new(
                c.path.display().to_string(),
                // `--config`, else found by the search upward.
                ctx.settings
                    .raw("config_file")?
                    .map_or(Origin::Default, |v| v.origin),
            ),
        ),
        None => Setting::missing("config_file", "no fluxloop.yaml found".into()),
    })
}

fn credentials_file(ctx: &Ctx) -> Result<Setting> {
    let path = ctx.home()?.join("credentials");
    let origin = match ctx.settings.raw("credentials_file")? {
        Some(v) => v.origin,
        None => Origin::Default,
    };
    Ok(Setting::new(
        "credentials_file",
        Value::new(path.display().to_string(), origin),
    ))
}

fn get(ctx: &Ctx, key: &str) -> Result<Outcome> {
    let Some(decl) = registry::find(key) else {
        let known: Vec<&str> = registry::SETTINGS.iter().map(|d| d.key).collect();
        return Err(Error::config(
            format!("unknown setting '{key}' for config get"),
            Some(format!("known keys: {}", known.join(", "))),
        ));
    };
    let key = decl.key;
    let all = settings(ctx)?;
    let setting = all
        .into_iter()
        .find(|s| s.key == key)
        .expect("every declared setting is listed");
    if setting.value.is_none() {
        return Err(Error::NotFound {
            what: format!("setting {key} ({})", setting.origin),
            hint: None,
        });
    }
    Ok(Outcome::ok(GetReport { setting }))
}

fn list(ctx: &Ctx) -> Result<Outcome> {
    Ok(Outcome::ok(ListReport {
        settings: settings(ctx)?,
    }))
}
