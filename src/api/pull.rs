//! `POST /api/sync/pull` (PLATFORM-API §4): what a pull asks for. The
//! answer is spooled to a file and read item by item (`pull_spool`).

use serde::Serialize;

use super::{paths, Client, Spooled};
use crate::error::Result;

/// The request body. Fields in alphabetical order, as the `json!` map that
/// built it before sent them; the ones not decided are left out.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PullBody {
    /// A bundle asked for by id: the platform ignores project and scenario then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bundle_version_id: Option<String>,
    pub(crate) include_criteria: bool,
    pub(crate) include_inputs: bool,
    pub(crate) include_personas: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scenario_id: Option<String>,
}

impl Default for PullBody {
    /// Everything a run needs, of whatever bundle the platform picks.
    fn default() -> Self {
        PullBody {
            bundle_version_id: None,
            include_criteria: true,
            include_inputs: true,
            include_personas: true,
            project_id: None,
            scenario_id: None,
        }
    }
}

/// Pulls into `spool` (rewound and truncated before each attempt); with
/// `etag`, conditionally: a 304 comes back as `not_modified`.
pub(crate) fn sync_pull(
    client: &Client,
    body: &PullBody,
    spool: &std::fs::File,
    etag: Option<&str>,
) -> Result<Spooled> {
    client.post_to_file(paths::SYNC_PULL, body, spool, etag)
}

/// The URL a pull goes to, for errors about its answer.
pub(crate) fn sync_pull_url(client: &Client) -> String {
    format!("{}{}", client.base(), paths::SYNC_PULL)
}
