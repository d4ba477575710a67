//! Credentials: who a Bearer value belongs to, what scope it carries, and
//! issuing API keys (login tokens are in `tokens`).
//!
//! A Bearer value starting with `flx_api_` or `flx_sa_` is an API key, one
//! starting with `flx_oidc_` a token issued by an OIDC exchange (`oidc`);
//! anything else is looked up as a login access token. Lookups go through the
//! SHA-256 hash (indexed), and the stored hash is then compared again in
//! constant time, so no secret-dependent early exit leaks through timing.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::http::ApiError;
use crate::util::{now_ms, rfc3339, rfc3339_opt, secret, sha256};

/// Prefix of user API keys.
pub(crate) const USER_KEY_PREFIX: &str = "flx_api_";
/// Prefix of service-account API keys.
pub(crate) const SA_KEY_PREFIX: &str = "flx_sa_";
/// Random characters after a key prefix.
const KEY_LEN: usize = 32;

/// What a key may do (PLATFORM-API §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Read,
    Write,
    ReadWrite,
    Admin,
}

impl Scope {
    /// Parses the wire name; `None` for anything else.
    pub(crate) fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "read-write" => Some(Scope::ReadWrite),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::ReadWrite => "read-write",
            Scope::Admin => "admin",
        }
    }

    /// Whether this scope covers `need`. `write` deliberately does not include
    /// `read`: a CI key that only uploads cannot read scenarios.
    fn allows(self, need: Need) -> bool {
        match need {
            Need::Read => matches!(self, Scope::Read | Scope::ReadWrite | Scope::Admin),
            Need::Write => matches!(self, Scope::Write | Scope::ReadWrite | Scope::Admin),
            Need::Admin => self == Scope::Admin,
        }
    }
}

/// What an endpoint requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    Admin,
}

impl Need {
    fn describe(self) -> &'static str {
        match self {
            Need::Read => "`read` (read, read-write or admin)",
            Need::Write => "`write` (write, read-write or admin)",
            Need::Admin => "`admin`",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    /// A login access token: acts as admin on the user's own projects.
    User {
        user_id: String,
        email: String,
        expires_ms: i64,
        /// The login this token descends from (see `tokens`).
        family_id: String,
    },
    /// An API key, bound to one project.
    Key(KeyRecord),
}

impl Principal {
    /// Fails with 403 `forbidden` unless the credential's scope covers `need`.
    pub(crate) fn require(&self, need: Need) -> Result<(), ApiError> {
        match self {
            Principal::User { .. } => Ok(()),
            Principal::Key(k) if k.scope.allows(need) => Ok(()),
            Principal::Key(k) => Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "this key has scope `{}`; this endpoint needs {}",
                    k.scope.as_str(),
                    need.describe()
                ),
            )),
        }
    }

    /// Fails with 404 unless the caller may see `project_id`: a key only its own
    /// project, a user the projects of the workspaces they own. Unknown and
    /// foreign projects answer alike so ids of others cannot be probed.
    pub(crate) fn check_project(
        &self,
        conn: &Connection,
        project_id: &str,
    ) -> Result<(), ApiError> {
        let visible = match self {
            Principal::Key(k) => k.project_id == project_id,
            Principal::User { user_id, .. } => user_owns_project(conn, user_id, project_id)?,
        };
        if visible {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "project {project_id} not found"
            )))
        }
    }

    /// The project to use when a request names none: the key's own, or the
    /// user's only one.
    pub(crate) fn default_project(&self, conn: &Connection) -> Result<String, ApiError> {
        match self {
            Principal::Key(k) => Ok(k.project_id.clone()),
            Principal::User { user_id, .. } => {
                let ids = user_project_ids(conn, user_id)?;
                match ids.as_slice() {
                    [only] => Ok(only.clone()),
                    [] => Err(ApiError::not_found("you have no projects yet".to_owned())),
                    _ => Err(ApiError::invalid(
                        "project_id is required: this account has several projects".to_owned(),
                    )),
                }
            }
        }
    }

    /// `project_id` if given (checked), else [`Principal::default_project`].
    pub(crate) fn resolve_project(
        &self,
        conn: &Connection,
        project_id: Option<&str>,
    ) -> Result<String, ApiError> {
        match project_id {
            Some(p) => {
                self.check_project(conn, p)?;
                Ok(p.to_owned())
            }
            None => self.default_project(conn),
        }
    }
}

/// Whether the user owns the workspace of the project.
pub(crate) fn user_owns_project(
    conn: &Connection,
    user_id: &str,
    project_id: &str,
) -> Result<bool, ApiError> {
    let found = conn
        .query_row(
            "SELECT 1 FROM projects p JOIN workspaces w ON w.id = p.workspace_id
             WHERE p.id = ?1 AND w.owner_id = ?2",
            params![project_id, user_id],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Ids of the projects a user owns, oldest first.
pub(crate) fn user_project_ids(conn: &Connection, user_id: &str) -> Result<Vec<String>, ApiError> {
    let mut stmt = conn.prepare(
        "SELECT p.id FROM projects p JOIN workspaces w ON w.id = p.workspace_id
         WHERE w.owner_id = ?1 ORDER BY p.created_ms, p.rowid",
    )?;
    let ids = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// A stored API key (never the key itself).
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) name: String,
    pub(crate) key_type: String,
    pub(crate) scope: Scope,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: Option<i64>,
    pub(crate) last_used_ms: Option<i64>,
    pub(crate) usage_count: i64,
    pub(crate) revoked_ms: Option<i64>,
    /// For a token issued by an OIDC exchange (`key_type` `oidc`): whose
    /// identity it was granted to, under which policy.
    pub(crate) oidc: Option<crate::oidc::Identity>,
}

/// Columns read by [`KeyRecord::from_row`], in order.
pub(crate) const KEY_COLUMNS: &str = "id, project_id, name, type, scope, created_ms, expires_ms, \
     last_used_ms, usage_count, revoked_ms, key_hash";

impl KeyRecord {
    /// Reads a row selected with [`KEY_COLUMNS`].
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
        let scope: String = r.get(4)?;
        Ok(KeyRecord {
            id: r.get(0)?,
            project_id: r.get(1)?,
            name: r.get(2)?,
            key_type: r.get(3)?,
            // Only valid scopes are ever written; read-only is the safe reading
            // of a row edited by hand.
            scope: Scope::parse(&scope).unwrap_or(Scope::Read),
            created_ms: r.get(5)?,
            expires_ms: r.get(6)?,
            last_used_ms: r.get(7)?,
            usage_count: r.get(8)?,
            revoked_ms: r.get(9)?,
            oidc: None,
        })
    }

    /// The JSON record of PLATFORM-API §3; for an OIDC token also
    /// `key_type`, `subject` and `policy_id` (contract of issue 19).
    pub(crate) fn to_json(&self) -> Value {
        let mut record = json!({
            "id": self.id,
            "name": self.name,
            "type": self.key_type,
            "scope": self.scope.as_str(),
            "project_id": self.project_id,
            "created_at": rfc3339(self.created_ms),
            "expires_at": rfc3339_opt(self.expires_ms),
            "last_used_at": rfc3339_opt(self.last_used_ms),
            "usage_count": self.usage_count,
            "revoked_at": rfc3339_opt(self.revoked_ms),
        });
        if let (Some(identity), Value::Object(map)) = (&self.oidc, &mut record) {
            map.insert("key_type".to_owned(), json!(self.key_type));
            map.insert("subject".to_owned(), json!(identity.subject));
            map.insert("policy_id".to_owned(), json!(identity.policy_id));
        }
        record
    }
}

/// Finds a key record by the key itself.
pub(crate) fn find_key(conn: &Connection, key: &str) -> Result<Option<KeyRecord>, ApiError> {
    let hash = sha256(key);
    let row = conn
        .query_row(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"),
            [&hash],
            |r| Ok((KeyRecord::from_row(r)?, r.get::<_, Vec<u8>>(10)?)),
        )
        .optional()?;
    Ok(row.and_then(|(rec, stored)| bool::from(stored.ct_eq(&hash)).then_some(rec)))
}

/// Creates a key; returns its record and the key, which exists nowhere else
/// from then on.
pub(crate) fn insert_key(
    conn: &Connection,
    project_id: &str,
    name: &str,
    key_type: &str,
    scope: Scope,
    expires_ms: Option<i64>,
) -> Result<(KeyRecord, String), ApiError> {
    let prefix = match key_type {
        "user" => USER_KEY_PREFIX,
        "service-account" => SA_KEY_PREFIX,
        other => {
            return Err(ApiError::unprocessable(format!(
                "type must be `user` or `service-account`, not `{other}`"
            )))
        }
    };
    let key = secret(prefix, KEY_LEN);
    let rec = KeyRecord {
        id: crate::util::new_id(),
        project_id: project_id.to_owned(),
        name: name.to_owned(),
        key_type: key_type.to_owned(),
        scope,
        created_ms: now_ms(),
        expires_ms,
        last_used_ms: None,
        usage_count: 0,
        revoked_ms: None,
        oidc: None,
    };
    conn.execute(
        "INSERT INTO api_keys (id, key_hash, project_id, name, type, scope, created_ms, expires_ms, key_suffix)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            rec.id,
            sha256(&key),
            rec.project_id,
            rec.name,
            rec.key_type,
            scope.as_str(),
            rec.created_ms,
            rec.expires_ms,
            &key[key.len().saturating_sub(4)..]
        ],
    )?;
    Ok((rec, key))
}

/// Identifies the caller from the `Authorization` header value. A key in good
/// standing is counted as used (`last_used_at`, `usage_count`) before any scope
/// check, so refused attempts with a valid key show up in its usage too.
pub(crate) fn authenticate(conn: &Connection, header: Option<&str>) -> Result<Principal, ApiError> {
    let Some(header) = header else {
        return Err(ApiError::unauthenticated("missing Authorization header"));
    };
    let token = match header.trim().split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => {
            return Err(ApiError::unauthenticated(
                "Authorization must be `Bearer <token>`",
            ))
        }
    };
    if token.is_empty() {
        return Err(ApiError::unauthenticated("empty bearer token"));
    }
    let now = now_ms();
    if token.starts_with(USER_KEY_PREFIX) || token.starts_with(SA_KEY_PREFIX) {
        let Some(mut key) = find_key(conn, token)? else {
            return Err(ApiError::unauthenticated("unknown API key"));
        };
        if key.revoked_ms.is_some() {
            return Err(ApiError::new(
                401,
                "key_revoked",
                "this API key has been revoked".to_owned(),
            ));
        }
        if key.expires_ms.is_some_and(|e| now >= e) {
            return Err(ApiError::new(
                401,
                "token_expired",
                "this API key has expired".to_owned(),
            ));
        }
        conn.execute(
            "UPDATE api_keys SET last_used_ms = ?1, usage_count = usage_count + 1 WHERE id = ?2",
            params![now, key.id],
        )?;
        key.last_used_ms = Some(now);
        key.usage_count += 1;
        return Ok(Principal::Key(key));
    }
    if token.starts_with(crate::oidc::TOKEN_PREFIX) {
        return crate::oidc::authenticate(conn, token, now).map(Principal::Key);
    }
    crate::tokens::find_access(conn, token, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_table() {
        assert!(Scope::ReadWrite.allows(Need::Read));
        assert!(Scope::ReadWrite.allows(Need::Write));
        assert!(!Scope::Write.allows(Need::Read));
        assert!(!Scope::Read.allows(Need::Write));
        assert!(!Scope::ReadWrite.allows(Need::Admin));
        assert!(Scope::Admin.allows(Need::Read));
    }
}
