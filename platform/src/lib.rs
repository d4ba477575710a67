//! The local FluxLoop platform: every endpoint of `PLATFORM-API.md` served on a
//! loopback port, backed by one SQLite database.
//!
//! Two ways in:
//! - [`Platform::start`] runs the server in-process (tests start one per test on
//!   `127.0.0.1:0` and ask [`Platform::url`] where it listens); dropping the
//!   [`Platform`] stops it and joins every thread it started.
//! - [`Store`] opens the same database without a server, for the admin
//!   subcommands of the `fluxloop-platform` binary (seed, create a key, approve a
//!   device code) — they work while a server runs on the same file.
//!
//! Module map: `db` owns the schema and migrations, `auth` credentials and
//! scopes, `tokens` login token families, `oidc` keyless CI (OIDC token
//! exchange and trust policies), `guard` the `Host`, CSRF and page
//! policies, `http` the wire (axum and hyper on tokio, limits, faults, logging), `routes/` one
//! file per resource, `seed` the demo data, `util` time, randomness and escaping.

mod accounts;
mod auth;
mod db;
mod guard;
mod http;
mod oidc;
mod routes;
mod seed;
mod store;
mod tokens;
mod util;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use accounts::random_password;
pub use oidc::policy::{NewTrustPolicy, TrustPolicy};
pub use oidc::MAX_TOKEN_TTL;
pub use routes::{Route, ROUTES};
pub use store::{CreatedKey, Demo, SeededScenario, Store};

/// How to run a platform. `Default` is what tests want: an ephemeral loopback
/// port, an in-memory database, one-hour access tokens.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind, `host:port`; the host must be a loopback address.
    pub addr: String,
    /// Extra URLs this server is reached by (`https://platform.example`, a
    /// reverse proxy in front of it). Requests are answered only when their
    /// `Host` is the listening address, `localhost`, `127.0.0.1` or `[::1]`
    /// with its port, or the host of one of these.
    pub public_urls: Vec<String>,
    /// Database file; `None` keeps everything in memory for the life of the server.
    pub data: Option<PathBuf>,
    /// Lifetime of access tokens issued by login and refresh.
    pub access_token_ttl: Duration,
    /// How long a device code may wait for approval.
    pub device_code_ttl: Duration,
    /// The polling interval announced to device-login clients, in seconds.
    pub poll_interval_secs: u64,
    /// Write one line per request to stderr.
    pub log: bool,
    /// Most runs accepted in one upload request (PLATFORM-API §5: 1000).
    /// Raised only to measure clients that send everything at once.
    pub max_runs_per_request: usize,
    /// What a connection or request may cost before it is cut off.
    pub limits: Limits,
    /// Append one JSON line per `/api` request to this file: method, the
    /// route template it matched (`null` for none), path, query pairs and
    /// JSON body. For tests that check what a client sends against
    /// `openapi.yaml`; it keeps bodies, secrets included, so never in
    /// production.
    pub record_requests: Option<PathBuf>,
    /// Lifetime of the access tokens OIDC exchanges issue; at most
    /// [`MAX_TOKEN_TTL`] (longer is cut to it).
    pub oidc_token_ttl: Duration,
    /// Least time between two fetches of an issuer's JWKS when tokens name
    /// kids it lacks (rotation); tests set 0.
    pub jwks_min_refresh: Duration,
}

/// The limits every connection and request is held to, so no client (slow,
/// idle, or sending too much) can take the server from the others.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections open at once; one more is closed at once.
    pub max_connections: usize,
    /// Time to send a request's headers, from the connection's start or the
    /// end of the previous answer (so also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time for a request's whole body to arrive: 408 after it.
    pub body_timeout: Duration,
    /// Time for a whole request, body and route: 408 after it.
    pub request_timeout: Duration,
    /// Requests kept in the journal ([`Platform::requests`]); older ones go.
    pub journal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            journal: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:0".to_owned(),
            public_urls: Vec::new(),
            data: None,
            access_token_ttl: Duration::from_secs(3600),
            device_code_ttl: Duration::from_secs(600),
            poll_interval_secs: 5,
            log: false,
            max_runs_per_request: 1000,
            limits: Limits::default(),
            record_requests: None,
            oidc_token_ttl: MAX_TOKEN_TTL,
            jwks_min_refresh: Duration::from_secs(30),
        }
    }
}

/// Everything that can go wrong when starting a platform or running an admin
/// operation on its database.
#[derive(Debug)]
pub enum PlatformError {
    /// The listening socket could not be set up.
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The address is not a loopback address: this is a platform for one
    /// machine (plain HTTP, a demo user whose password is printed), so it must
    /// not be reachable from elsewhere; put a TLS proxy in front and name it
    /// with `--public-url` instead.
    NotLoopback {
        /// The address asked for.
        addr: String,
    },
    /// The database file could not be opened, migrated or queried.
    Database {
        /// What was being done.
        context: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A directory for the database could not be created.
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An admin operation named something that does not exist.
    NotFound {
        /// What was looked for, e.g. `device code ABCD-EFGH`.
        what: String,
    },
    /// An admin operation got an argument it cannot use.
    Invalid {
        /// Why.
        message: String,
    },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            PlatformError::NotLoopback { addr } => write!(
                f,
                "{addr} is not a loopback address; the local platform only listens on 127.0.0.1, ::1 or localhost"
            ),
            PlatformError::Database { context, .. } => write!(f, "database error while {context}"),
            PlatformError::Io { path, .. } => write!(f, "cannot create {}", path.display()),
            PlatformError::NotFound { what } => write!(f, "{what} not found"),
            PlatformError::Invalid { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for PlatformError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlatformError::Bind { source, .. } | PlatformError::Io { source, .. } => Some(source),
            PlatformError::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One request the server answered, for tests that check which calls a client
/// made. Secrets are not kept: only whether an `Authorization` header was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Status sent.
    pub status: u16,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Whether an `Authorization` header was present.
    pub authorization_present: bool,
}

/// A failure to inject into the next request to a path (see
/// [`Platform::inject_faults`]). Every fault except [`Fault::Stall`] and
/// [`Fault::HoldAnswer`] *replaces*
/// processing: the request is not applied, so a client that retries after it
/// must see its data stored exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a JSON error body (`rate_limited` for 429,
    /// `unavailable` for 503, `internal_error` otherwise), with `Retry-After`
    /// when given.
    Status {
        /// HTTP status to send.
        status: u16,
        /// Seconds for the `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Sleep this long, then process the request normally.
    Stall(Duration),
    /// Process the request, then hold its answer this long: the platform
    /// has stored what a client that gives up meanwhile never hears of.
    HoldAnswer(Duration),
    /// Answer 200 with the body `<html>oops`.
    NonJson,
    /// Answer 200 with a JSON body cut in half.
    Truncated,
}

/// A running platform. Dropping it stops the server and joins its threads.
pub struct Platform {
    store: Store,
    server: http::Server,
}

impl Platform {
    /// Opens (creating or migrating) the database, makes sure the local user
    /// exists, binds the listener and starts serving. The listener is bound when
    /// this returns, so [`Platform::url`] can be used at once.
    pub fn start(config: Config) -> Result<Platform, PlatformError> {
        let store = Store::open(&config)?;
        let server = http::Server::start(&config, Arc::clone(&store.state))?;
        Ok(Platform { store, server })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Answers requests addressed to `url` from now on too, as if it had been
    /// in [`Config::public_urls`]: for a proxy started in front of a running
    /// platform, which forwards the `Host` its clients sent.
    pub fn add_public_url(&self, url: &str) -> Result<(), PlatformError> {
        self.server.hosts().add(url)
    }

    /// The database behind this server, for admin operations.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Seeds the demo project (see [`Store::seed_demo`]).
    pub fn seed_demo(&self) -> Result<Demo, PlatformError> {
        self.store.seed_demo(10)
    }

    /// Adds a scenario with one published bundle of `inputs` generated inputs.
    pub fn seed_scenario(
        &self,
        project_id: &str,
        name: &str,
        inputs: usize,
    ) -> Result<SeededScenario, PlatformError> {
        self.store.seed_scenario(project_id, name, inputs)
    }

    /// Creates an API key; `key_type` is `user` or `service-account`.
    pub fn create_key(
        &self,
        project_id: &str,
        name: &str,
        key_type: &str,
        scope: &str,
    ) -> Result<CreatedKey, PlatformError> {
        self.store.create_key(project_id, name, key_type, scope)
    }

    /// Approves a pending device code as the local user.
    pub fn approve_device(&self, user_code: &str) -> Result<(), PlatformError> {
        self.store.decide_device(user_code, true)
    }

    /// Denies a pending device code.
    pub fn deny_device(&self, user_code: &str) -> Result<(), PlatformError> {
        self.store.decide_device(user_code, false)
    }

    /// How many runs the batch holds.
    pub fn run_count(&self, batch_id: &str) -> Result<usize, PlatformError> {
        self.store.run_count(batch_id)
    }

    /// Ids of every run batch, oldest first.
    pub fn batch_ids(&self) -> Result<Vec<String>, PlatformError> {
        self.store.batch_ids()
    }

    /// The latest requests answered (at most [`Limits::journal`]), in order
    /// of completion.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.store.state.requests()
    }

    /// Queues faults for the next requests to `path` (exact match on the path
    /// without query): one fault per request, in order, then normal service.
    pub fn inject_faults(&self, path: &str, faults: Vec<Fault>) {
        self.store.state.inject_faults(path, faults);
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("url", &self.url())
            .finish()
    }
}
