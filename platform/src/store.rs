//! Shared server state ([`State`]: the database, settings, the request journal
//! and queued faults) and [`Store`], the admin operations on it that tests and
//! the binary's subcommands use without going through HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::auth::{insert_key, Scope};
use crate::oidc::policy::{self, NewTrustPolicy, TrustPolicy};
use crate::{db, seed, util, Config, Fault, PlatformError, RequestRecord};

/// Email of the one local user the pages sign in as.
pub(crate) const LOCAL_USER_EMAIL: &str = "demo@fluxloop.local";

/// Locks a mutex, carrying on after a panic elsewhere: every writer keeps the
/// guarded data consistent between statements, so the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything a request handler can reach.
pub(crate) struct State {
    /// One connection: SQLite serialises writers anyway, and every request is
    /// short.
    db: Mutex<Connection>,
    pub(crate) access_token_ttl: Duration,
    pub(crate) device_code_ttl: Duration,
    pub(crate) poll_interval_secs: u64,
    /// Most runs in one upload request.
    pub(crate) max_runs_per_request: usize,
    /// Id of the local user (see [`LOCAL_USER_EMAIL`]).
    pub(crate) local_user_id: String,
    /// The latest requests, at most `journal_capacity`.
    requests: Mutex<VecDeque<RequestRecord>>,
    journal_capacity: usize,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// OIDC exchanges: key cache and settings.
    pub(crate) oidc: crate::oidc::Oidc,
    /// Whether the server log (stderr) is on: each OIDC exchange is a line.
    pub(crate) log: bool,
}

impl State {
    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        let mut journal = lock(&self.requests);
        if journal.len() >= self.journal_capacity {
            journal.pop_front();
        }
        if self.journal_capacity > 0 {
            journal.push_back(r);
        }
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub(crate) fn inject_faults(&self, path: &str, faults: Vec<Fault>) {
        lock(&self.faults)
            .entry(path.to_owned())
            .or_default()
            .extend(faults);
    }

    pub(crate) fn take_fault(&self, path: &str) -> Option<Fault> {
        lock(&self.faults)
            .get_mut(path)
            .and_then(VecDeque::pop_front)
    }

    pub(crate) fn ttl_ms(&self) -> i64 {
        i64::try_from(self.access_token_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A scenario made by [`Store::seed_scenario`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededScenario {
    /// The scenario.
    pub scenario_id: String,
    /// Its one published bundle version.
    pub bundle_version_id: String,
}

/// A key made by [`Store::create_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    /// The key record's id.
    pub id: String,
    /// The key itself, shown this once.
    pub key: String,
}

/// What [`Store::seed_demo`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// The local user, owner of the demo project.
    pub user_id: String,
    /// Their email, `demo@fluxloop.local`.
    pub user_email: String,
    /// The demo project.
    pub project_id: String,
    /// Its name.
    pub project_name: String,
    /// The `support-bot` scenario.
    pub scenario_id: String,
    /// Always `support-bot`.
    pub scenario_name: String,
    /// The scenario's published bundle.
    pub bundle_version_id: String,
    /// Its version number.
    pub bundle_version: i64,
    /// A fresh `read-write` service-account key for the project.
    pub key: String,
}

/// The database with the admin operations; shared with a running server.
pub struct Store {
    pub(crate) state: Arc<State>,
}

impl Store {
    /// Opens (creating and migrating) the database of `config` and makes sure
    /// the local user and their workspace exist.
    pub fn open(config: &Config) -> Result<Store, PlatformError> {
        let conn = db::open(config.data.as_deref())?;
        let local_user_id = ensure_local_user(&conn)?;
        Ok(Store {
            state: Arc::new(State {
                db: Mutex::new(conn),
                access_token_ttl: config.access_token_ttl,
                device_code_ttl: config.device_code_ttl,
                poll_interval_secs: config.poll_interval_secs,
                max_runs_per_request: config.max_runs_per_request,
                local_user_id,
                requests: Mutex::new(VecDeque::new()),
                journal_capacity: config.limits.journal,
                faults: Mutex::new(HashMap::new()),
                oidc: crate::oidc::Oidc::new(
                    config.oidc_token_ttl,
                    config.jwks_min_refresh,
                    listens_on_loopback(&config.addr),
                ),
                log: config.log,
            }),
        })
    }

    /// Whether no project exists yet (a fresh database).
    pub fn is_empty(&self) -> Result<bool, PlatformError> {
        let n: i64 = self
            .state
            .db()
            .query_row("SELECT COUNT(*) FROM projects", [], |r| r.get(0))
            .map_err(dberr("counting projects"))?;
        Ok(n == 0)
    }

    /// Seeds the demo: the local user's project `Demo Project` (reused if it
    /// exists) with the `support-bot` scenario and a published bundle of
    /// `inputs` customer-support inputs (3 personas, 4 criteria), and a new
    /// `read-write` service-account key.
    pub fn seed_demo(&self, inputs: usize) -> Result<Demo, PlatformError> {
        let conn = self.state.db();
        seed::demo(&conn, &self.state.local_user_id, inputs)
    }

    /// Adds a scenario with one published bundle of `inputs` generated inputs.
    pub fn seed_scenario(
        &self,
        project_id: &str,
        name: &str,
        inputs: usize,
    ) -> Result<SeededScenario, PlatformError> {
        let conn = self.state.db();
        self.project_exists(&conn, project_id)?;
        let (scenario_id, bundle_version_id, _) =
            seed::scenario(&conn, project_id, name, inputs).map_err(dberr("seeding a scenario"))?;
        Ok(SeededScenario {
            scenario_id,
            bundle_version_id,
        })
    }

    /// Creates an empty project in the local user's workspace; returns its id.
    pub fn create_project(&self, name: &str) -> Result<String, PlatformError> {
        let conn = self.state.db();
        let err = dberr("creating a project");
        let workspace_id: String = conn
            .query_row(
                "SELECT id FROM workspaces WHERE owner_id = ?1 ORDER BY created_ms LIMIT 1",
                [&self.state.local_user_id],
                |r| r.get(0),
            )
            .map_err(&err)?;
        let id = util::new_id();
        conn.execute(
            "INSERT INTO projects (id, workspace_id, name, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, workspace_id, name, util::now_ms()],
        )
        .map_err(&err)?;
        Ok(id)
    }

    /// Finds a project by id or by name; `None` picks the only project.
    pub fn find_project(&self, id_or_name: Option<&str>) -> Result<String, PlatformError> {
        let conn = self.state.db();
        let mut stmt = conn
            .prepare("SELECT id FROM projects WHERE ?1 IS NULL OR id = ?1 OR name = ?1 ORDER BY created_ms")
            .map_err(dberr("finding a project"))?;
        let ids = stmt
            .query_map([id_or_name], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(dberr("finding a project"))?;
        match (ids.as_slice(), id_or_name) {
            ([only], _) => Ok(only.clone()),
            ([], Some(p)) => Err(PlatformError::NotFound {
                what: format!("project {p}"),
            }),
            ([], None) => Err(PlatformError::NotFound {
                what: "any project (run `fluxloop-platform seed-demo` first)".to_owned(),
            }),
            (_, _) => Err(PlatformError::Invalid {
                message: "several projects match; pass --project with a project id".to_owned(),
            }),
        }
    }

    /// Creates an API key for a project.
    pub fn create_key(
        &self,
        project_id: &str,
        name: &str,
        key_type: &str,
        scope: &str,
    ) -> Result<CreatedKey, PlatformError> {
        let scope = Scope::parse(scope).ok_or_else(|| PlatformError::Invalid {
            message: format!("scope must be read, write, read-write or admin, not `{scope}`"),
        })?;
        let conn = self.state.db();
        self.project_exists(&conn, project_id)?;
        let (rec, key) = insert_key(&conn, project_id, name, key_type, scope, None)
            .map_err(|e| PlatformError::Invalid { message: e.message })?;
        Ok(CreatedKey { id: rec.id, key })
    }

    /// Approves (`true`) or denies a pending device code as the local user.
    pub fn decide_device(&self, user_code: &str, approve: bool) -> Result<(), PlatformError> {
        let conn = self.state.db();
        let code = util::normalize_user_code(user_code);
        let outcome =
            crate::routes::device::decide(&conn, &code, &self.state.local_user_id, approve)
                .map_err(|e| PlatformError::Invalid { message: e.message })?;
        match outcome {
            crate::routes::device::Decision::Done => Ok(()),
            crate::routes::device::Decision::NotFound => Err(PlatformError::NotFound {
                what: format!("pending device code {code}"),
            }),
            crate::routes::device::Decision::Expired => Err(PlatformError::Invalid {
                message: format!("device code {code} has expired"),
            }),
        }
    }

    /// How many runs the batch holds.
    pub fn run_count(&self, batch_id: &str) -> Result<usize, PlatformError> {
        let n: i64 = self
            .state
            .db()
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .map_err(dberr("counting runs"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The stored results of a batch's runs, in order: `{"id", "transcript",
    /// "metrics"}` each, as the client sent them (null before a result).
    pub fn run_results(&self, batch_id: &str) -> Result<Vec<serde_json::Value>, PlatformError> {
        let conn = self.state.db();
        let mut stmt = conn
            .prepare(
                "SELECT id, transcript, metrics FROM runs WHERE batch_id = ?1 ORDER BY position",
            )
            .map_err(dberr("listing runs"))?;
        let parse = |t: Option<String>| {
            t.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        let rows = stmt
            .query_map([batch_id], |r| {
                Ok(serde_json::json!({
                    "id": r.get::<_, String>(0)?,
                    "transcript": parse(r.get(1)?),
                    "metrics": parse(r.get(2)?),
                }))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(dberr("listing runs"))?;
        Ok(rows)
    }

    /// Ids of every run batch, oldest first.
    pub fn batch_ids(&self) -> Result<Vec<String>, PlatformError> {
        let conn = self.state.db();
        let mut stmt = conn
            .prepare("SELECT id FROM run_batches ORDER BY created_ms, rowid")
            .map_err(dberr("listing batches"))?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(dberr("listing batches"))?;
        Ok(ids)
    }

    /// Adds a trust policy to a project (checked as the API checks it).
    pub fn add_trust_policy(
        &self,
        project_id: &str,
        new: NewTrustPolicy,
    ) -> Result<TrustPolicy, PlatformError> {
        let conn = self.state.db();
        self.project_exists(&conn, project_id)?;
        let on_loopback = self.state.oidc.platform_on_loopback();
        let created = policy::prepare(project_id, new, on_loopback)
            .map_err(|message| PlatformError::Invalid { message })?;
        policy::insert(&conn, &created).map_err(dberr("adding a trust policy"))?;
        Ok(created)
    }

    /// The trust policies of a project, or of every project, oldest first.
    pub fn trust_policies(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<TrustPolicy>, PlatformError> {
        let conn = self.state.db();
        if let Some(p) = project_id {
            self.project_exists(&conn, p)?;
        }
        policy::list(&conn, project_id).map_err(dberr("listing trust policies"))
    }

    /// Removes a trust policy; the tokens it issued stop working.
    pub fn remove_trust_policy(&self, id: &str) -> Result<(), PlatformError> {
        let removed =
            policy::remove(&self.state.db(), id).map_err(dberr("removing a trust policy"))?;
        if removed {
            Ok(())
        } else {
            Err(PlatformError::NotFound {
                what: format!("trust policy {id}"),
            })
        }
    }

    fn project_exists(&self, conn: &Connection, project_id: &str) -> Result<(), PlatformError> {
        let found = conn
            .query_row("SELECT 1 FROM projects WHERE id = ?1", [project_id], |_| {
                Ok(())
            })
            .optional()
            .map_err(dberr("finding a project"))?;
        found.ok_or_else(|| PlatformError::NotFound {
            what: format!("project {project_id}"),
        })
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Whether every address `addr` names is a loopback one (the server refuses
/// to start otherwise; admin subcommands assume it).
fn listens_on_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map(|all| {
            let all: Vec<_> = all.collect();
            !all.is_empty() && all.iter().all(|a| a.ip().is_loopback())
        })
        .unwrap_or(false)
}

/// Wraps a SQLite error with what was being done.
pub(crate) fn dberr(context: &str) -> impl Fn(rusqlite::Error) -> PlatformError + '_ {
    move |source| PlatformError::Database {
        context: context.to_owned(),
        source,
    }
}

/// Creates the local user and their workspace on first start; returns the
/// user's id.
fn ensure_local_user(conn: &Connection) -> Result<String, PlatformError> {
    let existing: Option<String> = conn
        .query_row(
            "SELECT id FROM users WHERE email = ?1",
            [LOCAL_USER_EMAIL],
            |r| r.get(0),
        )
        .optional()
        .map_err(dberr("reading the local user"))?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let now = util::now_ms();
    let user_id = util::new_id();
    let tx = conn
        .unchecked_transaction()
        .map_err(dberr("creating the local user"))?;
    tx.execute(
        "INSERT INTO users (id, email, created_ms) VALUES (?1, ?2, ?3)",
        params![user_id, LOCAL_USER_EMAIL, now],
    )
    .and_then(|_| {
        tx.execute(
            "INSERT INTO workspaces (id, name, owner_id, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![util::new_id(), "Local workspace", user_id, now],
        )
    })
    .and_then(|_| tx.commit())
    .map_err(dberr("creating the local user"))?;
    Ok(user_id)
}
