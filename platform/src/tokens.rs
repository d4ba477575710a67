//! Login tokens (PLATFORM-API §2): issuing an access + refresh pair, rotating
//! it, and revoking it, by token family.
//!
//! Every pair descends from one login (a redeemed device code): that login is
//! a row of `token_families`, and each token carries its `family_id`. A
//! refresh keeps the family. Revoking the family (logout, or a rotated-away
//! refresh token presented again, OAuth 2.0 Security BCP §4.14) ends every
//! access and refresh token of that login at once, so a stolen refresh token
//! cannot live on beside the victim's.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::auth::Principal;
use crate::http::ApiError;
use crate::util::{new_id, now_ms, rfc3339, secret, sha256};

/// Random characters after a token prefix.
const TOKEN_LEN: usize = 40;
/// Refresh tokens live long but not forever: 30 days.
const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// What a client is told when it presents a token of a revoked family.
const REVOKED: &str =
    "this login has ended (logged out, or a refresh token was used twice); log in again";
/// What the one who presents a rotated-away refresh token is told.
const REUSED: &str = "refresh token was already used; every token of this login is revoked";

/// Starts a login: a new family for `user_id` and its first token pair;
/// returns the `credential` object of PLATFORM-API §2.
pub(crate) fn issue_login(
    conn: &Connection,
    user_id: &str,
    ttl_ms: i64,
) -> Result<Value, ApiError> {
    let family = new_id();
    conn.execute(
        "INSERT INTO token_families (id, user_id, created_ms) VALUES (?1, ?2, ?3)",
        params![family, user_id, now_ms()],
    )?;
    issue_pair(conn, user_id, &family, ttl_ms)
}

/// A new access + refresh token pair in `family`.
fn issue_pair(
    conn: &Connection,
    user_id: &str,
    family: &str,
    ttl_ms: i64,
) -> Result<Value, ApiError> {
    let email: String =
        conn.query_row("SELECT email FROM users WHERE id = ?1", [user_id], |r| {
            r.get(0)
        })?;
    let now = now_ms();
    let access = secret("flx_at_", TOKEN_LEN);
    let refresh = secret("flx_refresh_", TOKEN_LEN);
    let expires_ms = now.saturating_add(ttl_ms);
    conn.prepare_cached(
        "INSERT INTO access_tokens (token_hash, user_id, created_ms, expires_ms, family_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![sha256(&access), user_id, now, expires_ms, family])?;
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, user_id, created_ms, expires_ms, family_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        sha256(&refresh),
        user_id,
        now,
        now.saturating_add(REFRESH_TTL_MS),
        family
    ])?;
    Ok(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_at": rfc3339(expires_ms),
        "expires_in": ttl_ms / 1000,
        "user_id": user_id,
        "user_email": email,
    }))
}

/// The user behind an access token, unless it is unknown, expired, or its
/// login has ended.
pub(crate) fn find_access(conn: &Connection, token: &str, now: i64) -> Result<Principal, ApiError> {
    let hash = sha256(token);
    let row = conn
        .prepare_cached(
            "SELECT t.token_hash, t.user_id, u.email, t.expires_ms, t.family_id, f.revoked_ms
             FROM access_tokens t JOIN users u ON u.id = t.user_id
             LEFT JOIN token_families f ON f.id = t.family_id
             WHERE t.token_hash = ?1",
        )?
        .query_row([&hash], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .optional()?;
    let Some((stored, user_id, email, expires_ms, family, revoked)) = row else {
        return Err(ApiError::unauthenticated("unknown access token"));
    };
    if !bool::from(stored.ct_eq(&hash)) {
        return Err(ApiError::unauthenticated("unknown access token"));
    }
    // A token without a family (or of a family that is gone) belongs to no
    // login that can be checked; it is refused like a revoked one.
    let (Some(family_id), None) = (family, revoked) else {
        return Err(ApiError::unauthenticated(REVOKED));
    };
    if now >= expires_ms {
        return Err(ApiError::new(
            401,
            "token_expired",
            "the access token has expired; refresh it or log in again".to_owned(),
        ));
    }
    Ok(Principal::User {
        user_id,
        email,
        expires_ms,
        family_id,
    })
}

/// A stored refresh token.
struct RefreshRow {
    user_id: String,
    expires_ms: i64,
    used: bool,
    family_id: Option<String>,
    family_revoked: bool,
}

fn find_refresh(conn: &Connection, token: &str) -> Result<Option<RefreshRow>, ApiError> {
    let hash = sha256(token);
    let row = conn
        .prepare_cached(
            "SELECT t.token_hash, t.user_id, t.expires_ms, t.used_ms, t.family_id, f.revoked_ms
             FROM refresh_tokens t LEFT JOIN token_families f ON f.id = t.family_id
             WHERE t.token_hash = ?1",
        )?
        .query_row([&hash], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                RefreshRow {
                    user_id: r.get(1)?,
                    expires_ms: r.get(2)?,
                    used: r.get::<_, Option<i64>>(3)?.is_some(),
                    family_id: r.get(4)?,
                    family_revoked: r.get::<_, Option<i64>>(5)?.is_some(),
                },
            ))
        })
        .optional()?;
    Ok(row.and_then(|(stored, row)| bool::from(stored.ct_eq(&hash)).then_some(row)))
}

/// Marks a family revoked; its tokens stop working with the next request.
fn revoke_family(conn: &Connection, family: &str, reason: &str) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE token_families SET revoked_ms = ?1, revoked_reason = ?2
         WHERE id = ?3 AND revoked_ms IS NULL",
    )?
    .execute(params![now_ms(), reason, family])?;
    Ok(())
}

/// Trades a refresh token for a new pair of the same family. The old token is
/// marked used in the same transaction; presenting it again revokes the family.
pub(crate) fn rotate_refresh(
    conn: &Connection,
    refresh: &str,
    ttl_ms: i64,
) -> Result<Value, ApiError> {
    let Some(row) = find_refresh(conn, refresh)? else {
        return Err(ApiError::unauthenticated("unknown refresh token"));
    };
    let Some(family) = row.family_id.filter(|_| !row.family_revoked) else {
        return Err(ApiError::unauthenticated(REVOKED));
    };
    if row.used {
        revoke_family(conn, &family, "refresh token reused")?;
        return Err(ApiError::unauthenticated(REUSED));
    }
    let now = now_ms();
    if now >= row.expires_ms {
        return Err(ApiError::new(
            401,
            "token_expired",
            "the refresh token has expired; log in again".to_owned(),
        ));
    }
    let tx = conn.unchecked_transaction()?;
    let changed = tx.execute(
        "UPDATE refresh_tokens SET used_ms = ?1 WHERE token_hash = ?2 AND used_ms IS NULL",
        params![now, sha256(refresh)],
    )?;
    if changed != 1 {
        // Another request rotated it between the read and this write: a reuse.
        drop(tx);
        revoke_family(conn, &family, "refresh token reused")?;
        return Err(ApiError::unauthenticated(REUSED));
    }
    let credential = issue_pair(&tx, &row.user_id, &family, ttl_ms)?;
    tx.commit()?;
    Ok(credential)
}

/// Ends the login of `family` and, when given, that of `refresh` (whoever
/// holds a refresh token may end its login, as a key's holder may revoke it).
pub(crate) fn logout(
    conn: &Connection,
    family: &str,
    refresh: Option<&str>,
) -> Result<(), ApiError> {
    let tx = conn.unchecked_transaction()?;
    revoke_family(&tx, family, "logout")?;
    if let Some(other) = refresh
        .map(|r| find_refresh(&tx, r))
        .transpose()?
        .flatten()
        .and_then(|row| row.family_id)
    {
        revoke_family(&tx, &other, "logout")?;
    }
    tx.commit()?;
    Ok(())
}
