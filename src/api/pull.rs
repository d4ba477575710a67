//! `POST /api/sync/pull` (PLATFORM-API §4): what a pull asks for. The
//! answer is spooled to a file and read item by item (`pull_spool`).

use serde::{Deserialize, Serialize};

use super::types::lenient;
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

/// What the CLI reads of a pull document: the response, and the copy of
/// its sections `sync_meta.json` keeps (with our own record of the pull).
/// The rest is kept as the platform sent it. Each field is read leniently,
/// as a FluxLoop 0.4 file may hold another shape.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct PullDocument {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) bundle_version: BundleVersion,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) scenario_context: ScenarioContext,
    /// Ours, in `sync_meta.json` only.
    #[serde(default, rename = "fluxloop_rs", deserialize_with = "lenient")]
    pub(crate) pulled: PullRecord,
}

/// `bundle_version`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct BundleVersion {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) id: Option<String>,
    /// A number, or text on platforms that send it so.
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) version: Option<NumberOrText>,
}

/// A value sent as a number or as text, shown as text.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrText {
    Number(serde_json::Number),
    Text(String),
}

impl std::fmt::Display for NumberOrText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberOrText::Number(n) => write!(f, "{n}"),
            NumberOrText::Text(t) => f.write_str(t),
        }
    }
}

/// `scenario_context`: the scenario's name is what the CLI reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ScenarioContext {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) scenario: ScenarioRef,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ScenarioRef {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) name: Option<String>,
}

/// Our record of a pull in `sync_meta.json`: the hash of each file as
/// written, and the platform's `ETag` to ask for it conditionally.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct PullRecord {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) hashes: std::collections::BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) etag: Option<String>,
}

impl PullDocument {
    /// The typed view of a pull response or `sync_meta.json`.
    pub(crate) fn of(doc: &serde_json::Value) -> PullDocument {
        PullDocument::deserialize(doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_document_reads_what_the_cli_needs_and_tolerates_other_shapes() {
        let doc = serde_json::json!({
            "bundle_version": {"id": "b1", "version": 3},
            "scenario_context": {"scenario": {"name": "support-bot"}},
            "fluxloop_rs": {"hashes": {"inputs.json": "ab"}, "etag": "\"e1\""},
            "input_set": {"anything": true},
        });
        let d = PullDocument::of(&doc);
        assert_eq!(d.bundle_version.id.as_deref(), Some("b1"));
        assert_eq!(
            d.bundle_version.version.map(|v| v.to_string()).as_deref(),
            Some("3")
        );
        assert_eq!(
            d.scenario_context.scenario.name.as_deref(),
            Some("support-bot")
        );
        assert_eq!(d.pulled.hashes["inputs.json"], "ab");
        assert_eq!(d.pulled.etag.as_deref(), Some("\"e1\""));
        // A version as text, an id of another type, a section that is not an object.
        let odd = serde_json::json!({
            "bundle_version": {"id": 7, "version": "v2"},
            "scenario_context": [],
        });
        let d = PullDocument::of(&odd);
        assert_eq!(d.bundle_version.id, None);
        assert_eq!(
            d.bundle_version.version.map(|v| v.to_string()).as_deref(),
            Some("v2")
        );
        assert_eq!(d.scenario_context.scenario.name, None);
        assert!(PullDocument::of(&serde_json::json!("not an object"))
            .pulled
            .hashes
            .is_empty());
    }
}
