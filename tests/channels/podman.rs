//! The Dockerfile built and run for real, daemonless: `buildah bud
//! --isolation chroot` on vfs storage, containers run by podman with runc.
//! No registry is reachable, so the base images are stand-ins built from
//! Debian packages by `tests/channels/standin-images` and tagged with the
//! names the Dockerfile uses; the tarballs and the image store live under
//! target/ so later runs only rebuild what changed. Both targets are built
//! once per test process with the default build arguments.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::util::{self, Ran};

pub const INSTALL: &str = "apt-get install -y podman buildah runc busybox-static mmdebstrap";
pub const RUNTIME: &str = "localhost/fluxloop-channels:runtime";
pub const SHELL: &str = "localhost/fluxloop-channels:shell";

/// Where the stand-in tarballs and the container store are kept.
fn state() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("channel-images")
}

/// podman or buildah with this suite's own config and store: vfs storage,
/// runc, cgroupfs, no ulimits to set (what this sandbox allows).
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(util::require(name, INSTALL));
    store_env(&mut c);
    c
}

/// Points podman and buildah, also when started by another tool
/// (gitlab-ci-local), at this suite's config and store.
pub fn store_env(c: &mut Command) {
    let dir = state();
    // TMPDIR: buildah keeps `RUN --mount=type=cache` directories there, so
    // the cargo registry and target caches stay under target/ too.
    std::fs::create_dir_all(dir.join("tmp")).expect("mkdir tmp");
    c.env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
        .env("TMPDIR", dir.join("tmp"));
}

#[track_caller]
pub fn ok(cmd: Command, limit: Duration) -> Ran {
    let desc = format!("{cmd:?}");
    let ran = util::run_bounded(cmd, limit);
    assert!(ran.ok(), "{desc}\n{}", ran.all());
    ran
}

fn write_config(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("containers.conf"),
        "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n\
         cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .expect("containers.conf");
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("storage").display(),
            dir.join("run").display()
        ),
    )
    .expect("storage.conf");
}

/// Imports a stand-in rootfs tarball under `name` unless the store has it.
fn import(tar: &Path, name: &str, changes: &[&str]) {
    let mut exists = tool("podman");
    exists.args(["image", "exists", name]);
    if util::run_bounded(exists, Duration::from_secs(60)).ok() {
        return;
    }
    let mut c = tool("podman");
    c.args(["import", "-q"]);
    for ch in changes {
        c.arg("--change").arg(ch);
    }
    c.arg(tar).arg(name);
    ok(c, Duration::from_secs(600));
}

/// The Dockerfile as written, minus the `@sha256:` pins of its base images:
/// a stand-in cannot have the upstream digest. Everything else is untouched.
fn standin_dockerfile(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(util::repo().join("Dockerfile")).expect("Dockerfile");
    let out: Vec<String> = src
        .lines()
        .map(|l| match (l.strip_prefix("FROM "), l.find("@sha256:")) {
            (Some(_), Some(at)) => {
                let end = l[at..].find(' ').map_or(l.len(), |e| at + e);
                format!("{}{}", &l[..at], &l[end..])
            }
            _ => l.to_string(),
        })
        .collect();
    let f = dir.join("Dockerfile.standin");
    std::fs::write(&f, out.join("\n") + "\n").expect("write Dockerfile");
    f
}

/// Builds the stand-in bases (cached) and both targets, once per process.
pub fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = state();
        write_config(&dir);
        util::require("mmdebstrap", INSTALL);
        util::require("busybox", INSTALL);
        let mut c = Command::new(util::repo().join("tests/channels/standin-images"));
        c.arg(dir.join("tarballs"));
        ok(c, Duration::from_secs(1200));
        import(
            &dir.join("tarballs/busybox.tar"),
            "docker.io/library/busybox:1.37-musl",
            &[],
        );
        import(
            &dir.join("tarballs/rust.tar"),
            "docker.io/library/rust:1.89-slim-bookworm",
            &[
                "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV RUSTUP_HOME=/usr/local/rustup",
                "ENV CARGO_HOME=/usr/local/cargo",
            ],
        );
        for name in [
            "docker.io/library/python:3.12",
            "docker.io/firecow/gitlab-ci-local-util:latest",
        ] {
            import(&dir.join("tarballs/tools.tar"), name, &[]);
        }
        // Containers earlier or interrupted runs left in this suite's own
        // store (gitlab-ci-local's jobs, buildah's working containers).
        for (bin, args) in [
            ("podman", &["rm", "-af"][..]),
            ("buildah", &["rm", "--all"]),
            ("podman", &["volume", "prune", "-f"]),
        ] {
            let mut c = tool(bin);
            c.args(args);
            ok(c, Duration::from_secs(300));
        }
        let dockerfile = standin_dockerfile(&dir);
        for (target, tag) in [(None, RUNTIME), (Some("shell"), SHELL)] {
            let mut b = tool("buildah");
            b.args(["bud", "--isolation", "chroot", "--pull=never", "--layers"])
                .arg("-f")
                .arg(&dockerfile)
                .args(["-t", tag]);
            if let Some(t) = target {
                b.args(["--target", t]);
            }
            b.arg(util::repo());
            ok(b, Duration::from_secs(1800));
        }
        // The name the GitLab template's `.fluxloop-image` job uses.
        let mut tag = tool("podman");
        tag.args(["tag", SHELL, &format!("ghcr.io/fluxloop/fluxloop:{}-shell", util::VERSION)]);
        ok(tag, Duration::from_secs(60));
        // vfs stores every layer whole: drop the previous builds' leftovers.
        let mut prune = tool("podman");
        prune.args(["image", "prune", "-f"]);
        ok(prune, Duration::from_secs(300));
    });
}

/// `podman run --rm --network host` with these arguments.
pub fn run(args: &[&str]) -> Ran {
    let mut c = tool("podman");
    c.args(["run", "--rm", "--network", "host"]).args(args);
    util::run_bounded(c, Duration::from_secs(300))
}
