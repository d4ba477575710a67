//! Device-code login (PLATFORM-API §2): start, poll (`complete`), refresh,
//! logout, and the approve/deny decision shared by the `/device` page and the admin
//! subcommands.
//!
//! A device code moves `pending` → `approved` | `denied`, and `approved` →
//! `redeemed` when `complete` hands out the credential. The credential is
//! returned exactly once: polling a redeemed code answers `expired` (the code
//! is used up, like an expired one), never a second token pair.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authenticate, Principal, SA_KEY_PREFIX, USER_KEY_PREFIX};
use crate::http::{ApiError, Request, Response};
use crate::store::State;
use crate::tokens::{issue_login, logout as end_login, rotate_refresh};
use crate::util::{now_ms, secret, sha256, user_code};

/// Body of `start`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    device_name: Option<String>,
}

/// Body of `complete`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    device_code: Option<String>,
}

/// Body of `refresh` and of `logout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
}

pub(crate) fn start(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: StartBody = req.json()?;
    let device_name = body
        .device_name
        .map(|n| n.chars().take(200).collect::<String>());
    let conn = state.db();
    let now = now_ms();
    let ttl_ms = i64::try_from(state.device_code_ttl.as_millis()).unwrap_or(i64::MAX);
    let device_code = secret("flx_dc_", 40);
    // A user code must identify one pending login; redraw on the (rare) clash.
    let code = loop {
        let c = user_code();
        let taken = conn
            .query_row(
                "SELECT 1 FROM device_codes WHERE user_code = ?1 AND status IN ('pending', 'approved') AND expires_ms > ?2",
                params![c, now],
                |_| Ok(()),
            )
            .optional()?;
        if taken.is_none() {
            break c;
        }
    };
    conn.execute(
        "INSERT INTO device_codes (code_hash, user_code, device_name, status, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
        params![sha256(&device_code), code, device_name, now, now.saturating_add(ttl_ms)],
    )?;
    let expires_in = ttl_ms / 1000;
    let interval = state.poll_interval_secs;
    Ok(Response::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": code,
            "verification_url": format!("{}/device?user_code={code}", req.base_url()),
            "expires_in": expires_in,
            "interval": interval,
            "expires_in_sec": expires_in,
            "interval_sec": interval,
        }),
    ))
}

pub(crate) fn complete(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: CompleteBody = req.json()?;
    let Some(device_code) = body.device_code.filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid("device_code is required".to_owned()));
    };
    let conn = state.db();
    let hash = sha256(&device_code);
    let row: Option<(String, Option<String>, i64)> = conn
        .query_row(
            "SELECT status, user_id, expires_ms FROM device_codes WHERE code_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((status, user_id, expires_ms)) = row else {
        return Err(ApiError::not_found("unknown device code".to_owned()));
    };
    let status_only = |s: &str| Ok(Response::json(200, &json!({"status": s})));
    if status == "redeemed" || status == "expired" {
        return status_only("expired");
    }
    if now_ms() >= expires_ms {
        conn.execute(
            "UPDATE device_codes SET status = 'expired' WHERE code_hash = ?1",
            [&hash],
        )?;
        return status_only("expired");
    }
    match (status.as_str(), user_id) {
        ("approved", Some(user_id)) => {
            let tx = conn.unchecked_transaction()?;
            // The status guard makes redemption single-use even if two polls race.
            let changed = tx.execute(
                "UPDATE device_codes SET status = 'redeemed' WHERE code_hash = ?1 AND status = 'approved'",
                [&hash],
            )?;
            if changed != 1 {
                return status_only("expired");
            }
            let credential = issue_login(&tx, &user_id, state.ttl_ms())?;
            tx.commit()?;
            Ok(Response::json(
                200,
                &json!({"status": "approved", "credential": credential}),
            ))
        }
        ("denied", _) => status_only("denied"),
        _ => status_only("pending"),
    }
}

pub(crate) fn refresh(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: RefreshBody = req.json()?;
    let Some(token) = body.refresh_token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::invalid("refresh_token is required".to_owned()));
    };
    let conn = state.db();
    let credential: Value = rotate_refresh(&conn, &token, state.ttl_ms())?;
    Ok(Response::json(200, &json!({"credential": credential})))
}

/// Ends the login of the bearer access token, and of the refresh token in the
/// body when one is given: every token of it stops working at once.
pub(crate) fn logout(state: &State, req: &Request, _: &[String]) -> Result<Response, ApiError> {
    let body: RefreshBody = req.json()?;
    let bearer = req.header("authorization").unwrap_or("");
    let token = bearer.trim().split_once(' ').map_or("", |(_, t)| t.trim());
    // Checked before authenticating, so a key is not counted as used by a
    // call that cannot apply to it.
    if token.starts_with(USER_KEY_PREFIX) || token.starts_with(SA_KEY_PREFIX) {
        return Err(ApiError::invalid(
            "logout ends a login; revoke a key with POST /api/api-keys/revoke".to_owned(),
        ));
    }
    let conn = state.db();
    let Principal::User { family_id, .. } = authenticate(&conn, req.header("authorization"))?
    else {
        return Err(ApiError::unauthenticated(
            "logout needs a login access token",
        ));
    };
    let refresh = body.refresh_token.filter(|t| !t.is_empty());
    end_login(&conn, &family_id, refresh.as_deref())?;
    Ok(Response::json(200, &json!({"status": "logged_out"})))
}

/// What happened to an approve/deny.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Recorded.
    Done,
    /// No pending code with that user code.
    NotFound,
    /// The code ran out before anyone decided.
    Expired,
}

/// Approves or denies the pending login with this (normalised) user code on
/// behalf of `user_id`.
pub(crate) fn decide(
    conn: &Connection,
    code: &str,
    user_id: &str,
    approve: bool,
) -> Result<Decision, ApiError> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row(
            "SELECT code_hash, expires_ms FROM device_codes WHERE user_code = ?1 AND status = 'pending'
             ORDER BY created_ms DESC LIMIT 1",
            [code],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((hash, expires_ms)) = row else {
        return Ok(Decision::NotFound);
    };
    if now_ms() >= expires_ms {
        conn.execute(
            "UPDATE device_codes SET status = 'expired' WHERE code_hash = ?1",
            [&hash],
        )?;
        return Ok(Decision::Expired);
    }
    let status = if approve { "approved" } else { "denied" };
    conn.execute(
        "UPDATE device_codes SET status = ?1, user_id = ?2 WHERE code_hash = ?3",
        params![status, user_id, hash],
    )?;
    Ok(Decision::Done)
}

/// Details of a pending code for the `/device` page: (device name, expires).
pub(crate) fn pending_info(
    conn: &Connection,
    code: &str,
) -> Result<Option<(Option<String>, i64)>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT device_name, expires_ms FROM device_codes WHERE user_code = ?1 AND status = 'pending'
             ORDER BY created_ms DESC LIMIT 1",
            [code],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}
