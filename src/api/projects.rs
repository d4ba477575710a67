//! Listings: the projects a credential sees and a project's scenarios.

use super::types::{Project, Scenario};
use super::{paths, query_escape, Client};
use crate::error::Result;

/// The projects the credential sees.
pub(crate) fn list_projects(client: &Client) -> Result<Vec<Project>> {
    client.get(paths::PROJECTS)
}

/// The scenarios of `project`.
pub(crate) fn list_scenarios(client: &Client, project: &str) -> Result<Vec<Scenario>> {
    client.get(&format!(
        "{}?project_id={}",
        paths::SCENARIOS,
        query_escape(project)
    ))
}
