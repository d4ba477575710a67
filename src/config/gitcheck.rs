//! "Don't commit credentials": a key file or credentials file inside a git
//! work tree that git does not ignore gets a warning naming the line to add
//! to `.gitignore`. Best effort: without `git` on PATH, or on any git
//! failure, nothing is said and nothing fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The warning for `path`, if it sits unignored in a git work tree.
pub(crate) fn exposure_warning(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let dir = path.parent()?;
    // Most credentials live outside any work tree (~/.fluxloop): spare every
    // command two git processes when no ancestor holds a `.git` (and git is
    // not pointed elsewhere by GIT_DIR, which the spawned git would inherit).
    if std::env::var_os("GIT_DIR").is_none() && !dir.ancestors().any(|d| d.join(".git").exists()) {
        return None;
    }
    let root = git(dir, &["rev-parse", "--show-toplevel"])?;
    let root = std::fs::canonicalize(PathBuf::from(root.trim())).ok()?;
    let rel = path.strip_prefix(&root).ok()?;
    // `check-ignore -q`: 0 ignored, 1 not ignored, anything else an error.
    let status = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["check-ignore", "-q", "--"])
        .arg(rel)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if status.code() != Some(1) {
        return None;
    }
    let line = format!("/{}", rel.to_string_lossy());
    Some(format!(
        "{} is inside the git work tree {} and not ignored; add this line to {}: {line}",
        path.display(),
        root.display(),
        root.join(".gitignore").display()
    ))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
