//! Authentication: the API key format, device login and token refresh.

pub(crate) mod key;
pub(crate) mod login;
pub(crate) mod oidc;
pub(crate) mod scope;
