//! The CI job as stages: [`pull`] the scenario, [`run`] the agent over it,
//! [`report`] what finished into the result directory, [`upload`] it.
//!
//! Each stage takes values its command already resolved (a small input
//! struct, paths, a `&Client` where it talks to the platform) and returns a
//! typed report. No stage sees the `Ctx`, reads the environment, resolves a
//! setting or prints: what it has to say is a field of its report, or goes
//! through the progress trait its command passes in, and `output/` renders
//! both. `test` chains all four; `sync pull` and `sync upload` call theirs.

pub(crate) mod pull;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod stream;
pub(crate) mod upload;

use std::path::Path;

/// `path` relative to the workspace root when inside it.
pub(crate) fn display_rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
