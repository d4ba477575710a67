//! People who sign in to the pages: local users with an argon2id password
//! hash, and browser sessions (a random id in an HttpOnly cookie, stored as
//! its SHA-256 hash like every other secret).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, Connection, OptionalExtension};

use crate::http::{ApiError, Request};
use crate::store::{Store, LOCAL_USER_EMAIL};
use crate::util::{new_id, now_ms, secret, sha256};
use crate::PlatformError;

/// Name of the session cookie.
const SESSION_COOKIE: &str = "flx_session";
/// Random characters of a session id.
const SESSION_LEN: usize = 43;
/// How long a session lasts: a working day.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The signed-in user of a page request.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
}

/// An argon2id PHC string of `password` (the crate's default, OWASP's
/// recommended parameters), with a fresh salt.
fn hash_password(password: &str) -> Result<String, PlatformError> {
    let salt_text = secret("", 22);
    let salt =
        SaltString::encode_b64(salt_text.as_bytes()).map_err(|e| PlatformError::Invalid {
            message: format!("cannot make a password salt: {e}"),
        })?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PlatformError::Invalid {
            message: format!("cannot hash the password: {e}"),
        })
}

/// Whether `password` matches the stored hash; a missing or unreadable hash
/// never matches.
fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let Some(parsed) = stored.and_then(|h| PasswordHash::new(h).ok()) else {
        // With no account, a hash of the same cost is still computed, so the
        // answer takes as long for an unknown email as for a wrong password.
        let _ = hash_password(password);
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Checks an email and password; the user when they match.
pub(crate) fn sign_in(
    conn: &Connection,
    email: &str,
    password: &str,
) -> Result<Option<User>, ApiError> {
    let row: Option<(String, String, Option<String>)> = conn
        .query_row(
            "SELECT id, email, password_hash FROM users WHERE email = ?1 COLLATE NOCASE",
            [email.trim()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let stored = row.as_ref().and_then(|(_, _, h)| h.as_deref());
    if !verify_password(password, stored) {
        return Ok(None);
    }
    Ok(row.map(|(id, email, _)| User { id, email }))
}

/// Starts a session; returns the `Set-Cookie` value.
pub(crate) fn start_session(
    conn: &Connection,
    user: &User,
    secure: bool,
) -> Result<String, ApiError> {
    let token = secret("", SESSION_LEN);
    let now = now_ms();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
        params![sha256(&token), user.id, now, now.saturating_add(SESSION_TTL_MS)],
    )?;
    let secure = if secure { "; Secure" } else { "" };
    Ok(format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

fn session_token(req: &Request) -> Option<String> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == SESSION_LEN)
}

/// The user of the request's session, if it has a live one.
pub(crate) fn session_user(conn: &Connection, req: &Request) -> Result<Option<User>, ApiError> {
    let Some(token) = session_token(req) else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT u.id, u.email FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_ms > ?2",
            params![sha256(&token), now_ms()],
            |r| {
                Ok(User {
                    id: r.get(0)?,
                    email: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Ends the request's session, if any.
pub(crate) fn end_session(conn: &Connection, req: &Request) -> Result<(), ApiError> {
    if let Some(token) = session_token(req) {
        conn.execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            [sha256(&token)],
        )?;
    }
    Ok(())
}

fn dberr(context: &str) -> impl FnOnce(rusqlite::Error) -> PlatformError {
    let context = context.to_owned();
    move |source| PlatformError::Database { context, source }
}

impl Store {
    /// Creates a local user who signs in with `password`, with a workspace
    /// of their own; returns the user id.
    pub fn create_user(&self, email: &str, password: &str) -> Result<String, PlatformError> {
        let email = email.trim();
        if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
            return Err(PlatformError::Invalid {
                message: format!("`{email}` is not an email address"),
            });
        }
        check_password(password)?;
        let hash = hash_password(password)?;
        let conn = self.state.db();
        let taken = conn
            .query_row(
                "SELECT 1 FROM users WHERE email = ?1 COLLATE NOCASE",
                [email],
                |_| Ok(()),
            )
            .optional()
            .map_err(dberr("looking up the user"))?;
        if taken.is_some() {
            return Err(PlatformError::Invalid {
                message: format!("a user with the email {email} already exists"),
            });
        }
        let (id, now) = (new_id(), now_ms());
        let tx = conn
            .unchecked_transaction()
            .map_err(dberr("creating the user"))?;
        tx.execute(
            "INSERT INTO users (id, email, created_ms, password_hash) VALUES (?1, ?2, ?3, ?4)",
            params![id, email, now, hash],
        )
        .and_then(|_| {
            tx.execute(
                "INSERT INTO workspaces (id, name, owner_id, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![new_id(), format!("Workspace of {email}"), id, now],
            )
        })
        .and_then(|_| tx.commit())
        .map_err(dberr("creating the user"))?;
        Ok(id)
    }

    /// Sets the password of an existing user and ends their sessions.
    pub fn set_password(&self, email: &str, password: &str) -> Result<(), PlatformError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        let conn = self.state.db();
        let changed = conn
            .execute(
                "UPDATE users SET password_hash = ?1 WHERE email = ?2 COLLATE NOCASE",
                params![hash, email.trim()],
            )
            .map_err(dberr("setting the password"))?;
        if changed == 0 {
            return Err(PlatformError::NotFound {
                what: format!("user {email}"),
            });
        }
        conn.execute(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE email = ?1 COLLATE NOCASE)",
            [email.trim()],
        )
        .map_err(dberr("ending the user's sessions"))?;
        Ok(())
    }

    /// Gives the demo user (`demo@fluxloop.local`) a new random password and
    /// returns it: the demo prints it once, as it prints the demo key.
    pub fn reset_demo_password(&self) -> Result<String, PlatformError> {
        let password = random_password();
        self.set_password(LOCAL_USER_EMAIL, &password)?;
        Ok(password)
    }
}

/// A new random password (20 letters and digits, about 119 bits).
pub fn random_password() -> String {
    secret("", 20)
}

fn check_password(password: &str) -> Result<(), PlatformError> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(PlatformError::Invalid {
            message: "a password needs 8 to 1024 characters".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("correct horsE", Some(&h)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("not a hash")));
    }
}
