//! The context a command runs in: the typed global flags, the environment
//! snapshot, the printer, and every setting, resolved once before the
//! command starts (config/settings.rs).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{Auth, Client, Endpoint, Event, NetOptions, Observer};
use crate::cli::GlobalArgs;
use crate::config::credentials::{self, CredentialsFile};
use crate::config::project::{LoadedConfig, ProjectJson};
use crate::config::registry::{self, Source};
use crate::config::resolve::Resolved;
use crate::config::settings::Settings;
use crate::config::{Env, Origin, Value};
use crate::error::{Error, Result};
use crate::output::Output;

/// Everything a command needs from outside itself.
pub(crate) struct Ctx {
    pub(crate) globals: GlobalArgs,
    pub(crate) env: Env,
    pub(crate) cwd: PathBuf,
    pub(crate) out: Arc<Output>,
    pub(crate) settings: Settings,
    /// Whether the credentials file's warnings (permissions) were given.
    credentials_warned: Cell<bool>,
    /// Whether the one-time credential warnings (an empty variable, a key
    /// file git would commit) were given.
    credential_warned: Cell<bool>,
}

impl Ctx {
    pub(crate) fn new(
        globals: GlobalArgs,
        env: Env,
        cwd: PathBuf,
        out: Arc<Output>,
        settings: Settings,
    ) -> Self {
        Ctx {
            globals,
            env,
            cwd,
            out,
            settings,
            credentials_warned: Cell::new(false),
            credential_warned: Cell::new(false),
        }
    }

    /// `$FLUXLOOP_HOME` or `~/.fluxloop`.
    pub(crate) fn home(&self) -> Result<PathBuf> {
        self.settings.home.clone()
    }

    /// `fluxloop.yaml`: `--config`, else the nearest one upward.
    pub(crate) fn config(&self) -> Result<Option<&LoadedConfig>> {
        match &self.settings.config {
            Ok(c) => Ok(c.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }

    /// The credentials file, its warnings printed the first time it is used.
    pub(crate) fn credentials(&self) -> Result<&CredentialsFile> {
        let file = self.settings.credentials.as_ref().map_err(Error::clone)?;
        if !self.credentials_warned.replace(true) {
            for w in &file.warnings {
                self.out.warn(w);
            }
        }
        Ok(file)
    }

    /// Gives the credentials file's warnings when `key`'s value needed the file.
    fn note_credentials_use(&self, key: &str) {
        if self.settings.uses_credentials(key) {
            let _ = self.credentials();
        }
    }

    /// A read-modify-write of the credentials file under its lock (see
    /// [`credentials::update`]).
    pub(crate) fn update_credentials<T>(
        &self,
        change: impl FnOnce(&mut CredentialsFile) -> Result<(T, bool)>,
    ) -> Result<T> {
        credentials::update(&self.home()?, &self.out, change)
    }

    /// The workspace root (CLI.md §4).
    pub(crate) fn workspace_root(&self) -> Result<PathBuf> {
        self.settings.workspace.clone()
    }

    /// `.fluxloop/project.json` of the workspace, if any.
    pub(crate) fn project_json(&self) -> Result<Option<&(PathBuf, ProjectJson)>> {
        match &self.settings.project_json {
            Ok(p) => Ok(p.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }

    pub(crate) fn profile(&self) -> Result<Value<String>> {
        self.note_credentials_use("profile");
        self.settings.profile()
    }

    pub(crate) fn endpoint(&self) -> Result<Value<String>> {
        self.note_credentials_use("endpoint");
        self.settings.endpoint()
    }

    /// The credential in effect; the first use also warns about an empty
    /// credential variable and a key file git would commit.
    pub(crate) fn credential(&self) -> Result<Resolved> {
        let first = !self.credential_warned.replace(true);
        if first {
            for source in registry::get("credential").sources {
                if let Source::Env(name) = source {
                    if self.env.is_set_but_empty(name) {
                        self.out.warn(&format!(
                            "{name} is set but empty, so it is ignored (is the CI secret missing or not passed to this job?)"
                        ));
                    }
                }
            }
        }
        self.note_credentials_use("credential");
        let resolved = self.settings.credential.clone()?;
        if first {
            if let Origin::KeyFile(path) | Origin::Profile { path, .. } =
                &resolved.credential.origin
            {
                if let Some(w) = crate::config::gitcheck::exposure_warning(path) {
                    self.out.warn(&w);
                }
            }
        }
        Ok(resolved)
    }

    /// Network options from the settings, for `endpoint`.
    pub(crate) fn net_options(&self, endpoint: &Endpoint) -> Result<NetOptions> {
        self.settings.net_options(endpoint, &self.env, &self.cwd)
    }

    /// What a stored login's refresh needs, owned, so a client can refresh
    /// on its own when the platform says the token expired mid-job.
    pub(crate) fn refresher(
        &self,
        endpoint: &str,
        profile: &str,
    ) -> Result<crate::auth::login::Refresher> {
        let parsed = Endpoint::parse(endpoint)
            .map_err(|why| Error::config(format!("invalid endpoint {endpoint:?}: {why}"), None))?;
        Ok(crate::auth::login::Refresher {
            home: self.home()?,
            out: Arc::clone(&self.out),
            opts: self.net_options(&parsed)?,
            endpoint: parsed,
            observer: self.observer(),
            profile: profile.to_string(),
        })
    }

    pub(crate) fn observer(&self) -> Observer {
        let out = Arc::clone(&self.out);
        Arc::new(move |event| match event {
            Event::Trace(line) => out.trace(&line),
            Event::Retry(line) => out.warn(&line),
        })
    }

    /// A client without an `Authorization` header (device login, refresh,
    /// logout: their secrets travel in the body).
    pub(crate) fn anonymous_client(&self, endpoint: &str) -> Result<Client> {
        self.client(endpoint, None)
    }

    /// A client sending `auth` to `endpoint`.
    pub(crate) fn client_with(&self, endpoint: &str, auth: Auth) -> Result<Client> {
        self.client(endpoint, Some(auth))
    }

    fn client(&self, endpoint: &str, auth: Option<Auth>) -> Result<Client> {
        let endpoint = Endpoint::parse(endpoint)
            .map_err(|why| Error::config(format!("invalid endpoint {endpoint:?}: {why}"), None))?;
        let opts = self.net_options(&endpoint)?;
        Client::new(&endpoint, auth, opts, self.observer())
    }

    /// Registers a credential that did not come from the CI's own secret store
    /// with GitHub Actions, before anything else is printed (CLI.md §3).
    pub(crate) fn mask_for_ci(&self, origin: &Origin, secret: &str) {
        if matches!(origin, Origin::KeyFile(_) | Origin::Profile { .. }) {
            self.out.add_mask(secret);
        }
    }

    /// True when running in CI, by the same test as the upload's CI metadata.
    pub(crate) fn in_ci(&self) -> bool {
        crate::ci::provider(&self.env).is_some()
    }

    /// Whether a confirmation may be asked on the terminal.
    pub(crate) fn can_prompt(&self) -> bool {
        self.out.stdin_tty && self.out.stderr_tty && !self.globals.json
    }

    /// Asks a yes/no question, or answers yes for `--yes`; without a terminal
    /// the command fails instead of hanging.
    pub(crate) fn confirm(&self, question: &str) -> Result<bool> {
        if self.globals.yes {
            return Ok(true);
        }
        if !self.can_prompt() {
            return Err(Error::NeedsConfirmation {
                question: question.to_string(),
            });
        }
        let answer = self
            .out
            .prompt(&format!("{question} [y/N]"))
            .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
        Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }
}
