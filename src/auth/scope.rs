//! The scope pre-check (CLI.md §3): ask the platform what the key may do
//! before the work starts, never after a long test run.

use crate::api::types::ApiKeyRecord;
use crate::api::Client;
use crate::ctx::Ctx;
use crate::error::{Error, Result};

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    Admin,
}

impl Need {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
            Need::Admin => "admin",
        }
    }
}

/// Whether `scope` covers `need`: `read-write` and `admin` include both read
/// and write; `write` does not include `read`.
pub(crate) fn covers(scope: &str, need: Need) -> bool {
    match need {
        Need::Read => matches!(scope, "read" | "read-write" | "admin"),
        Need::Write => matches!(scope, "write" | "read-write" | "admin"),
        Need::Admin => scope == "admin",
    }
}

/// Asks `/api/api-keys/self` once and fails fast if the key's scope misses
/// any of `needs`. Login tokens act as admin and are not checked. A platform
/// without `/self` (404) gets no pre-check: the real call's 403 still maps to
/// `Permission denied`. Returns the key's record when there is one.
pub(crate) fn require(ctx: &Ctx, client: &Client, needs: &[Need]) -> Result<Option<ApiKeyRecord>> {
    let Some(auth) = client.auth() else {
        return Ok(None);
    };
    if !auth.is_api_key {
        return Ok(None);
    }
    let record: ApiKeyRecord = match crate::api::keys::key_self(client) {
        Ok(r) => r,
        Err(Error::NotFound { .. }) | Err(Error::Api { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let scope = record.scope.clone().unwrap_or_default();
    for need in needs {
        if !covers(&scope, *need) {
            return Err(Error::PermissionDenied {
                have: Some(scope),
                need: needs
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                detail: String::new(),
            });
        }
    }
    if scope == "admin" && ctx.in_ci() {
        ctx.out.warn(
            "an admin key is used in CI; a read-write key is enough: `fluxloop apikeys create --scope read-write`, then revoke the admin key",
        );
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_table() {
        let table = [
            ("read", [true, false, false]),
            ("write", [false, true, false]),
            ("read-write", [true, true, false]),
            ("admin", [true, true, true]),
            ("", [false, false, false]),
        ];
        for (scope, [r, w, a]) in table {
            assert_eq!(covers(scope, Need::Read), r, "{scope} read");
            assert_eq!(covers(scope, Need::Write), w, "{scope} write");
            assert_eq!(covers(scope, Need::Admin), a, "{scope} admin");
        }
    }
}
