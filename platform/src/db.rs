//! The SQLite database: opening it (WAL, foreign keys, busy timeout), and the
//! schema, migrated step by step on start with `PRAGMA user_version`.
//!
//! Every time is stored as Unix milliseconds (`*_ms` columns) and rendered as
//! RFC 3339 at the edge, so expiry checks are integer comparisons. Secrets
//! (keys, access and refresh tokens, device codes) are stored only as SHA-256
//! hashes.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::PlatformError;

/// Each entry migrates from `user_version == index` to `index + 1`. Append
/// only: a released step never changes, so any older file can be brought up.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the whole first schema.
    "
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id TEXT NOT NULL REFERENCES users(id),
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id),
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE scenarios (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        goal TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE bundle_versions (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id),
        scenario_id TEXT NOT NULL REFERENCES scenarios(id),
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        input_set_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (scenario_id, version)
    );
    CREATE TABLE personas (
        id TEXT PRIMARY KEY,
        bundle_version_id TEXT NOT NULL REFERENCES bundle_versions(id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL
    );
    CREATE TABLE criteria (
        id TEXT PRIMARY KEY,
        bundle_version_id TEXT NOT NULL REFERENCES bundle_versions(id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        description TEXT NOT NULL
    );
    CREATE TABLE input_items (
        id TEXT PRIMARY KEY,
        input_set_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        persona_id TEXT,
        messages TEXT NOT NULL,
        metadata TEXT NOT NULL
    );
    CREATE INDEX input_items_by_set ON input_items (input_set_id, position);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        key_hash BLOB NOT NULL UNIQUE,
        project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        last_used_ms INTEGER,
        usage_count INTEGER NOT NULL DEFAULT 0,
        revoked_ms INTEGER
    );
    CREATE TABLE access_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE refresh_tokens (
        token_hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_ms INTEGER
    );
    CREATE TABLE device_codes (
        code_hash BLOB PRIMARY KEY,
        user_code TEXT NOT NULL,
        device_name TEXT,
        status TEXT NOT NULL,
        user_id TEXT REFERENCES users(id),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX device_codes_by_user_code ON device_codes (user_code);
    CREATE TABLE run_batches (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id),
        bundle_version_id TEXT NOT NULL REFERENCES bundle_versions(id),
        status TEXT NOT NULL,
        execution_target TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT,
        upload_meta TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE runs (
        batch_id TEXT NOT NULL REFERENCES run_batches(id),
        id TEXT NOT NULL,
        position INTEGER NOT NULL,
        input_item_id TEXT,
        persona_id TEXT,
        status TEXT NOT NULL,
        input_snapshot TEXT NOT NULL,
        result_status TEXT,
        transcript TEXT,
        metrics TEXT,
        PRIMARY KEY (batch_id, id)
    );
    CREATE TABLE turns (
        batch_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        sequence INTEGER,
        role TEXT,
        content TEXT,
        timestamp TEXT,
        duration_ms INTEGER,
        PRIMARY KEY (batch_id, run_id, turn_id)
    );
    CREATE TABLE idempotency (
        project_id TEXT NOT NULL,
        key TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, key)
    );
    ",
    // 1 -> 2: token families. Every access and refresh token descends from one
    // login; reusing a rotated refresh token or logging out revokes the whole
    // family. Tokens issued before this step each become a family of one.
    "
    CREATE TABLE token_families (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        revoked_reason TEXT
    );
    ALTER TABLE access_tokens ADD COLUMN family_id TEXT REFERENCES token_families(id);
    ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT REFERENCES token_families(id);
    INSERT INTO token_families (id, user_id, created_ms)
        SELECT 'a-' || lower(hex(token_hash)), user_id, created_ms FROM access_tokens;
    UPDATE access_tokens SET family_id = 'a-' || lower(hex(token_hash));
    INSERT INTO token_families (id, user_id, created_ms)
        SELECT 'r-' || lower(hex(token_hash)), user_id, created_ms FROM refresh_tokens;
    UPDATE refresh_tokens SET family_id = 'r-' || lower(hex(token_hash));
    CREATE INDEX access_tokens_by_family ON access_tokens (family_id);
    CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
    ",
    // 2 -> 3: the SHA-256 of the request body each key was first used with,
    // so a key replayed with another body is refused instead of answered
    // with the first body's result. Rows from before have none and replay.
    "ALTER TABLE idempotency ADD COLUMN body_hash BLOB",
    // 3 -> 4: people sign in to the pages: a password per user (argon2id PHC
    // string; none for users made before, who cannot sign in until one is
    // set) and browser sessions; and the last 4 characters of each new key,
    // so the key page can tell keys apart (older keys show none).
    "
    ALTER TABLE users ADD COLUMN password_hash TEXT;
    ALTER TABLE api_keys ADD COLUMN key_suffix TEXT;
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    ",
    // 4 -> 5: sharded jobs (issue 17): every shard of one CI build appends
    // to the batch of its key; each run remembers its shard, so a rerun
    // shard replaces its earlier runs instead of adding to them, and each
    // shard that sent all its runs is recorded.
    "
    ALTER TABLE run_batches ADD COLUMN batch_key TEXT;
    ALTER TABLE run_batches ADD COLUMN shard_total INTEGER;
    CREATE UNIQUE INDEX run_batches_by_key ON run_batches (project_id, batch_key)
        WHERE batch_key IS NOT NULL;
    ALTER TABLE runs ADD COLUMN shard_index INTEGER;
    CREATE TABLE run_batch_shards (
        batch_id TEXT NOT NULL REFERENCES run_batches(id),
        shard_index INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        reported_ms INTEGER NOT NULL,
        PRIMARY KEY (batch_id, shard_index)
    );
    ",
    // 5 -> 6: keyless CI (issue 19). Trust policies per project; the
    // access tokens exchanges issue (hashed, like every secret); each
    // successful exchange with the claims that matched; and the jti (or
    // token hash) of each exchanged ID token until it expires, so none is
    // exchanged twice. A removed policy keeps its row for its history.
    "
    CREATE TABLE trust_policies (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        issuer TEXT NOT NULL,
        audience TEXT NOT NULL,
        conditions TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_used_ms INTEGER,
        use_count INTEGER NOT NULL DEFAULT 0,
        removed_ms INTEGER
    );
    CREATE INDEX trust_policies_by_issuer ON trust_policies (issuer);
    CREATE TABLE oidc_tokens (
        token_hash BLOB PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        policy_id TEXT NOT NULL REFERENCES trust_policies(id),
        project_id TEXT NOT NULL REFERENCES projects(id),
        scope TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        last_used_ms INTEGER,
        usage_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX oidc_tokens_by_expiry ON oidc_tokens (expires_ms);
    CREATE TABLE oidc_exchanges (
        id INTEGER PRIMARY KEY,
        policy_id TEXT NOT NULL REFERENCES trust_policies(id),
        at_ms INTEGER NOT NULL,
        subject TEXT NOT NULL,
        matched TEXT NOT NULL
    );
    CREATE TABLE oidc_replay (
        issuer TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (issuer, key)
    );
    CREATE INDEX oidc_replay_by_expiry ON oidc_replay (expires_ms);
    ",
];

/// Opens the database at `path` (or in memory), applies pending migrations and
/// returns the connection.
pub(crate) fn open(path: Option<&Path>) -> Result<Connection, PlatformError> {
    let ctx = |context: &str| {
        let context = context.to_owned();
        move |source| PlatformError::Database { context, source }
    };
    let conn = match path {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| PlatformError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            Connection::open(p).map_err(ctx(&format!("opening {}", p.display())))?
        }
        None => Connection::open_in_memory().map_err(ctx("opening an in-memory database"))?,
    };
    // Admin subcommands open the same file while a server runs: wait for the
    // other writer instead of failing at once.
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(ctx("setting the busy timeout"))?;
    if path.is_some() {
        // WAL lets readers (the pages) run beside a writer and survives a crash
        // of the server without a rollback journal dance.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(ctx("switching to WAL mode"))?;
    }
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(ctx("setting pragmas"))?;
    migrate(&conn)?;
    Ok(conn)
}

/// Brings the schema to the newest version, one transaction per step.
fn migrate(conn: &Connection) -> Result<(), PlatformError> {
    let ctx = |context: String| move |source| PlatformError::Database { context, source };
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(ctx("reading the schema version".to_owned()))?;
    let newest = MIGRATIONS.len() as i64;
    if current > newest {
        return Err(PlatformError::Invalid {
            message: format!(
                "the database has schema version {current}, newer than this fluxloop-platform knows ({newest}); use a newer fluxloop-platform"
            ),
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let next = step + 1;
        let batch = format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;");
        if let Err(source) = conn.execute_batch(&batch) {
            // Leave the file as it was before this step.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(ctx(format!("migrating the schema to version {next}"))(
                source,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_fresh_file_and_reopens_it() {
        let dir = std::env::temp_dir().join(format!("flx-db-{}", crate::util::new_id()));
        let path = dir.join("nested").join("p.db");
        let conn = open(Some(&path)).expect("open fresh");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(conn);
        open(Some(&path)).expect("reopen");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tokens_from_before_families_each_get_a_family_of_their_own() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(&format!("{}; PRAGMA user_version = 1;", MIGRATIONS[0]))
            .expect("schema 1");
        conn.execute_batch(
            "INSERT INTO users VALUES ('u', 'a@b', 0);
             INSERT INTO access_tokens VALUES (x'01', 'u', 0, 9);
             INSERT INTO refresh_tokens VALUES (x'02', 'u', 0, 9, NULL);",
        )
        .expect("rows");
        migrate(&conn).expect("migrate");
        let families: Vec<String> = conn
            .prepare(
                "SELECT f.id FROM token_families f JOIN access_tokens a ON a.family_id = f.id
                 UNION ALL
                 SELECT f.id FROM token_families f JOIN refresh_tokens r ON r.family_id = f.id",
            )
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(families, ["a-01", "r-02"]);
    }
}
