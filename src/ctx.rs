//! The context a command runs in: the typed global flags, the environment
//! snapshot, the printer, and lazily loaded files, with resolution on top.

use std::cell::{Cell, OnceCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{Auth, Client, Endpoint, Event, NetOptions, Observer};
use crate::cli::GlobalArgs;
use crate::config::credentials::{self, CredentialsFile};
use crate::config::project::{self, LoadedConfig, ProjectJson};
use crate::config::resolve::{self, Resolved, Sources};
use crate::config::{Env, Origin, Value};
use crate::error::{Error, Result};
use crate::output::Output;

/// Everything a command needs from outside itself.
pub(crate) struct Ctx {
    pub(crate) globals: GlobalArgs,
    pub(crate) env: Env,
    pub(crate) cwd: PathBuf,
    pub(crate) out: Arc<Output>,
    config: OnceCell<Option<LoadedConfig>>,
    credentials: OnceCell<CredentialsFile>,
    project_json: OnceCell<Option<(PathBuf, ProjectJson)>>,
    /// Whether the one-time credential warnings (an empty variable, a key
    /// file git would commit) were given.
    git_checked: Cell<bool>,
}

impl Ctx {
    pub(crate) fn new(globals: GlobalArgs, env: Env, cwd: PathBuf, out: Arc<Output>) -> Self {
        Ctx {
            globals,
            env,
            cwd,
            out,
            config: OnceCell::new(),
            credentials: OnceCell::new(),
            project_json: OnceCell::new(),
            git_checked: Cell::new(false),
        }
    }

    /// `$FLUXLOOP_HOME` or `~/.fluxloop`.
    pub(crate) fn home(&self) -> Result<PathBuf> {
        let home = self.env.fluxloop_home()?;
        Ok(if home.is_absolute() {
            home
        } else {
            self.cwd.join(home)
        })
    }

    /// `fluxloop.yaml`: `--config`, else the nearest one upward.
    pub(crate) fn config(&self) -> Result<Option<&LoadedConfig>> {
        if let Some(c) = self.config.get() {
            return Ok(c.as_ref());
        }
        let loaded = project::find_config(self.globals.config.as_deref(), &self.cwd)?;
        Ok(self.config.get_or_init(|| loaded).as_ref())
    }

    /// The credentials file (loaded once; its warnings printed once).
    pub(crate) fn credentials(&self) -> Result<&CredentialsFile> {
        if let Some(c) = self.credentials.get() {
            return Ok(c);
        }
        let file = CredentialsFile::load(&self.home()?)?;
        for w in &file.warnings {
            self.out.warn(w);
        }
        Ok(self.credentials.get_or_init(|| file))
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
        if let Some(c) = self.config()? {
            return Ok(c.dir().to_path_buf());
        }
        Ok(project::workspace_root(&self.cwd, &self.home()?))
    }

    /// `.fluxloop/project.json` of the workspace, if any.
    pub(crate) fn project_json(&self) -> Result<Option<&(PathBuf, ProjectJson)>> {
        if let Some(p) = self.project_json.get() {
            return Ok(p.as_ref());
        }
        let loaded = project::load_project_json(&self.workspace_root()?)?;
        Ok(self.project_json.get_or_init(|| loaded).as_ref())
    }

    fn with_sources<T>(&self, f: impl FnOnce(&Sources<'_>) -> Result<T>) -> Result<T> {
        let config = self.config()?;
        let project_json = self.project_json()?;
        let load = || self.credentials();
        let sources = Sources {
            env: &self.env,
            flag_profile: self.globals.profile.as_deref(),
            flag_api_key: self.globals.api_key.as_deref(),
            flag_endpoint: self.globals.endpoint.as_deref(),
            config,
            project_json,
            credentials: &load,
        };
        f(&sources)
    }

    pub(crate) fn profile(&self) -> Result<Value<String>> {
        self.with_sources(resolve::resolve_profile)
    }

    pub(crate) fn endpoint(&self) -> Result<Value<String>> {
        self.with_sources(|s| resolve::resolve_endpoint(s, &|| self.profile()))
    }

    pub(crate) fn credential(&self) -> Result<Resolved> {
        let first = !self.git_checked.replace(true);
        if first {
            for name in [
                "FLUXLOOP_API_KEY",
                "FLUXLOOP_SYNC_API_KEY",
                "FLUXLOOP_TOKEN",
            ] {
                if self.env.is_set_but_empty(name) {
                    self.out.warn(&format!(
                        "{name} is set but empty, so it is ignored (is the CI secret missing or not passed to this job?)"
                    ));
                }
            }
        }
        let resolved = self.with_sources(|s| resolve::resolve_credential(s, &|| self.profile()))?;
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

    /// Network options from `fluxloop.yaml`, the environment and `--ca-cert`.
    pub(crate) fn net_options(&self, endpoint: &Endpoint) -> Result<NetOptions> {
        let mut opts = NetOptions::default();
        if let Some(c) = self.config()? {
            let api = &c.config.api;
            if let Some(t) = api.timeout.filter(|t| *t > 0.0 && t.is_finite()) {
                opts.timeout = std::time::Duration::from_secs_f64(t);
            }
            if let Some(t) = api.connect_timeout.filter(|t| *t > 0.0 && t.is_finite()) {
                opts.connect_timeout = std::time::Duration::from_secs_f64(t);
            }
            if let Some(r) = api.retries {
                opts.retries = r;
            }
            if let Some(ca) = &api.ca_cert {
                opts.ca_files.push(c.dir().join(self.env.expand_tilde(ca)));
            }
        }
        opts.apply_env(&self.env, endpoint)?;
        if let Some(ca) = &self.globals.ca_cert {
            let path = self.cwd.join(ca);
            if !path.is_file() {
                return Err(Error::MissingFile {
                    path,
                    what: "CA certificate (--ca-cert)",
                });
            }
            opts.ca_files.push(path);
        }
        Ok(opts)
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

    fn observer(&self) -> Observer {
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
