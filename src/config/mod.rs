//! Settings and where each one came from: flags, environment variables,
//! `fluxloop.yaml`, `.fluxloop/project.json` and the credentials file.

pub(crate) mod credentials;
pub(crate) mod env;
pub(crate) mod gitcheck;
pub(crate) mod project;
pub(crate) mod registry;
pub(crate) mod resolve;
pub(crate) mod settings;

use std::fmt;
use std::path::PathBuf;

pub(crate) use env::Env;

/// Where a setting's value came from, for `config list` and `auth status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Built in.
    Default,
    /// A command-line flag (`--api-key`).
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key in `fluxloop.yaml`.
    ProjectConfig { path: PathBuf, key: &'static str },
    /// A key file named by `api.key_file`.
    KeyFile(PathBuf),
    /// A profile in the credentials file.
    Profile { name: String, path: PathBuf },
    /// The credentials file itself (its `default_profile`).
    CredentialsFile(PathBuf),
    /// `.fluxloop/project.json`, shared with FluxLoop CLI 0.4.
    ProjectJson(PathBuf),
    /// The CI's OIDC identity, exchanged at the platform.
    Oidc(crate::auth::oidc::Provider),
}

impl Origin {
    /// A stable machine name for `--json`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Flag(_) => "flag",
            Origin::Env(_) => "env",
            Origin::ProjectConfig { .. } => "config_file",
            Origin::KeyFile(_) => "key_file",
            Origin::Profile { .. } => "profile",
            Origin::CredentialsFile(_) => "credentials_file",
            Origin::ProjectJson(_) => "project_json",
            Origin::Oidc(_) => "oidc",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Flag(name) => write!(f, "{name}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::ProjectConfig { path, key } => write!(f, "{key} in {}", path.display()),
            Origin::KeyFile(path) => write!(f, "key file {}", path.display()),
            Origin::Profile { name, path } => {
                write!(f, "profile {name} in {}", path.display())
            }
            Origin::CredentialsFile(path) => write!(f, "default_profile in {}", path.display()),
            Origin::ProjectJson(path) => write!(f, "{}", path.display()),
            Origin::Oidc(provider) => write!(f, "{provider}"),
        }
    }
}

/// A resolved setting with its origin.
#[derive(Clone, Debug)]
pub(crate) struct Value<T> {
    pub(crate) val: T,
    pub(crate) origin: Origin,
}

impl<T> Value<T> {
    pub(crate) fn new(val: T, origin: Origin) -> Self {
        Value { val, origin }
    }
}
