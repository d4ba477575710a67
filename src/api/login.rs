//! Device login, token refresh and logout (PLATFORM-API §2, FluxLoop's
//! `/api/cli-connect/*`): the request bodies and one call each.

use serde::de::IgnoredAny;
use serde::Serialize;

use super::types::{DeviceComplete, DeviceStart, RefreshResponse};
use super::{paths, Client, Retry};
use crate::error::Result;

/// `POST /api/cli-connect/start` body.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceStartRequest<'a> {
    /// Shown to the user on the approval page.
    pub(crate) device_name: &'a str,
}

/// `POST /api/cli-connect/complete` body.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceCompleteRequest<'a> {
    pub(crate) device_code: &'a str,
}

/// `POST /api/cli-connect/refresh` body.
#[derive(Debug, Serialize)]
pub(crate) struct RefreshRequest<'a> {
    pub(crate) refresh_token: &'a str,
}

/// `POST /api/cli-connect/logout` body: `null` when the login kept no
/// refresh token (the access token in the header is ended either way).
#[derive(Debug, Serialize)]
pub(crate) struct LogoutRequest<'a> {
    pub(crate) refresh_token: Option<&'a str>,
}

/// Starts a device login. Not repeated: a second start would show the
/// user a second code.
pub(crate) fn device_start(client: &Client, device_name: &str) -> Result<DeviceStart> {
    client.post(
        paths::CLI_CONNECT_START,
        &DeviceStartRequest { device_name },
        Retry::Once,
    )
}

/// Asks whether the user approved the login yet (a poll: safe to repeat).
pub(crate) fn device_complete(client: &Client, device_code: &str) -> Result<DeviceComplete> {
    client.post(
        paths::CLI_CONNECT_COMPLETE,
        &DeviceCompleteRequest { device_code },
        Retry::Idempotent,
    )
}

/// Trades a refresh token for new tokens; the old refresh token stops
/// working, so a lost answer cannot be asked for again.
pub(crate) fn refresh(client: &Client, refresh_token: &str) -> Result<RefreshResponse> {
    client.post(
        paths::CLI_CONNECT_REFRESH,
        &RefreshRequest { refresh_token },
        Retry::Once,
    )
}

/// Ends the login of the client's access token. Any JSON answer is success.
pub(crate) fn logout(client: &Client, refresh_token: Option<&str>) -> Result<()> {
    client
        .post::<_, IgnoredAny>(
            paths::CLI_CONNECT_LOGOUT,
            &LogoutRequest { refresh_token },
            Retry::Once,
        )
        .map(|_| ())
}
