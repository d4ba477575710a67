//! The supply chain: the release key pinned alike in every installer, one
//! signature check shared by all of them, and the signed checksums that
//! `scripts/release-build` writes verifying with the real `minisign`.

use std::process::Command;
use std::time::Duration;

use crate::util;

/// The public key every installer pins. The maintainers create the release
/// key pair (docs/ci.md, "Release signatures") and put its public half here
/// and in the files below; until then, installs from real releases fail
/// closed.
pub const PINNED_KEY: &str = "UNSET-the-maintainers-create-the-release-key";

const PINS: [(&str, &str); 4] = [
    ("action.yml", "PINNED_PUBLIC_KEY: \""),
    (
        "ci-templates/gitlab/fluxloop.gitlab-ci.yml",
        "FLUXLOOP_MINISIGN_PUBLIC_KEY: \"",
    ),
    (
        "ci-templates/jenkins/Jenkinsfile",
        "FLUXLOOP_MINISIGN_PUBLIC_KEY = '",
    ),
    (".github/workflows/release.yml", "MINISIGN_PUBLIC_KEY: \""),
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(util::repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_installer_pins_the_same_release_key() {
    for (file, prefix) in PINS {
        let src = read(file);
        let pins: Vec<&str> = src
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .collect();
        assert_eq!(pins.len(), 1, "{file}: one `{prefix}…` line");
        assert!(pins[0].starts_with(PINNED_KEY), "{file}: {}", pins[0]);
    }
}

/// The lines of `fl_ed25519` and `fl_minisign_verify`, as the shell
/// receives them.
fn verifier(file: &str) -> Vec<String> {
    let mut src = read(file);
    if file.ends_with("Jenkinsfile") {
        // Groovy's ''' strings turn `\\` into `\`.
        src = src.replace("\\\\", "\\");
    }
    let lines: Vec<&str> = src.lines().map(str::trim).collect();
    let start = lines
        .iter()
        .position(|l| *l == "fl_ed25519() {")
        .unwrap_or_else(|| panic!("{file} has no fl_ed25519"));
    let len = lines[start..]
        .iter()
        .position(|l| *l == "# minisign-verify: end")
        .expect("end marker");
    lines[start..start + len]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn every_installer_checks_signatures_with_the_same_code() {
    let action = verifier("action.yml");
    for file in [PINS[1].0, PINS[2].0] {
        assert_eq!(verifier(file), action, "{file} differs from action.yml");
    }
}

/// The SHA256SUMS.minisig that release-build writes verifies with minisign
/// itself, trusted comment included (the installers check that comment).
#[test]
#[ignore = "needs minisign"]
fn release_build_signs_sha256sums_for_minisign() {
    let minisign = util::require("minisign", "apt-get install -y minisign");
    let dist = util::release_dist();
    let mut c = Command::new(minisign);
    c.args(["-V", "-m"])
        .arg(dist.join("SHA256SUMS"))
        .args(["-P", &util::signing_key().public]);
    let ran = util::run_bounded(c, Duration::from_secs(60));
    assert!(ran.ok(), "{}", ran.all());
    assert!(
        ran.stdout.contains(&format!(
            "Trusted comment: fluxloop v{} SHA256SUMS",
            util::VERSION
        )),
        "{}",
        ran.all()
    );
}
