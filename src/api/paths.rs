//! Every endpoint path the CLI calls (PLATFORM-API.md), in one place: a
//! path appears nowhere else, so a renamed endpoint is one edit here.

/// `POST`: device login, step 1.
pub(crate) const CLI_CONNECT_START: &str = "/api/cli-connect/start";
/// `POST`: device login, polled until the user approves.
pub(crate) const CLI_CONNECT_COMPLETE: &str = "/api/cli-connect/complete";
/// `POST`: a refresh token traded for a fresh access token.
pub(crate) const CLI_CONNECT_REFRESH: &str = "/api/cli-connect/refresh";
/// `POST`: a login's refresh token revoked.
pub(crate) const CLI_CONNECT_LOGOUT: &str = "/api/cli-connect/logout";
/// `GET` lists keys (`?project_id=`), `POST` creates one.
pub(crate) const API_KEYS: &str = "/api/api-keys";
/// `GET`: the credential in use, described.
pub(crate) const API_KEYS_SELF: &str = "/api/api-keys/self";
/// `POST`: a key revoked, by id or by the key itself.
pub(crate) const API_KEYS_REVOKE: &str = "/api/api-keys/revoke";
/// `GET`: the projects the credential sees.
pub(crate) const PROJECTS: &str = "/api/projects";
/// `GET` (`?project_id=`): a project's scenarios.
pub(crate) const SCENARIOS: &str = "/api/scenarios";
/// `POST`: a scenario's bundle, inputs and personas.
pub(crate) const SYNC_PULL: &str = "/api/sync/pull";
/// `POST`: one chunk of a run batch's results.
pub(crate) const SYNC_UPLOAD: &str = "/api/sync/upload";
/// `GET /api/run-batches/ID`, or `?key=` for a sharded job's batch.
pub(crate) const RUN_BATCHES: &str = "/api/run-batches";
/// `POST`: a CI's OIDC identity token traded for an access token.
pub(crate) const OIDC_EXCHANGE: &str = "/api/auth/oidc/exchange";
