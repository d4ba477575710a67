//! Transcripts of everything that runs without a platform: help, version,
//! usage errors, config, and the auth, apikeys, test and network errors.
//! Each case is `tests/cmd/<group>/<name>.toml` with its `.stdout` and
//! `.stderr` (and an `.in/` work tree or `.out/` expected files); re-bless
//! them with `TRYCMD=overwrite cargo test --test cmd`.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn transcripts() {
    private_credentials_files();
    trycmd::TestCases::new()
        .default_bin_name("fluxloop")
        // The unreachable-endpoint cases retry for about 5 s; a hang is a bug.
        .timeout(Duration::from_secs(60))
        .case("tests/cmd/*/*.toml");
}

/// Git keeps only 0644 or 0755, and the CLI warns about a credentials file
/// that others can read (the warning has its own e2e test); the `.in/`
/// credentials files stand for ones `fluxloop` wrote, so they get its 0600.
fn private_credentials_files() {
    use std::os::unix::fs::PermissionsExt;
    for case in cases() {
        let file = case.with_extension("in").join("home/.fluxloop/credentials");
        if file.is_file() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600 a .in credentials file");
        }
    }
}

/// Every case file below `tests/cmd`.
fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd");
    let mut found = Vec::new();
    for group in std::fs::read_dir(&root).expect("tests/cmd") {
        let group = group.expect("tests/cmd entry").path();
        if !group.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&group).expect("a group directory") {
            let path = entry.expect("a case entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// trycmd leaves unchecked whatever a case does not spell out, and passes
/// the test process's environment through by default; so each case must
/// name its exit code, have both output files, start from an empty
/// environment with HOME and FLUXLOOP_HOME inside its sandbox, and set no
/// variable that would point outside it.
#[test]
fn every_case_is_hermetic_and_checks_everything() {
    let cases = cases();
    assert!(cases.len() > 50, "found {} cases", cases.len());
    for path in &cases {
        let text = std::fs::read_to_string(path).expect("read a case");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let has = |line: &str| lines.contains(&line);
        let name = path.display();
        assert!(
            has("[env]") && has("inherit = false"),
            "{name}: env.inherit"
        );
        assert!(has("[fs]") && has("sandbox = true"), "{name}: fs.sandbox");
        assert!(
            lines.iter().any(|l| l.starts_with("status.code = ")),
            "{name}: status.code"
        );
        let add = lines
            .iter()
            .find(|l| l.starts_with("add = {"))
            .unwrap_or_else(|| panic!("{name}: env.add"));
        assert!(
            add.contains(r#"HOME = "home""#) && add.contains(r#"FLUXLOOP_HOME = "home/.fluxloop""#),
            "{name}: HOME and FLUXLOOP_HOME are relative, so inside the sandbox"
        );
        assert!(!add.contains("SSL_CERT_"), "{name}: sets SSL_CERT_*");
        for ext in ["stdout", "stderr"] {
            assert!(path.with_extension(ext).is_file(), "{name}: no .{ext}");
        }
    }
}

/// The command paths of the table, read off the bash completions (which
/// are generated from it): a new command fails here until `help <command>`
/// has its transcript in `tests/cmd/help/help_<words>.toml`.
#[test]
fn every_command_has_a_help_transcript() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fluxloop"))
        .args(["completion", "bash"])
        .env_clear()
        .output()
        .expect("run fluxloop completion bash");
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8(out.stdout).expect("UTF-8 script");
    let paths: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('\'')?.split_once("') words="))
        .map(|(path, _)| path)
        .filter(|path| !path.is_empty())
        .collect();
    assert!(paths.len() > 20, "found {} commands", paths.len());
    let help = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd/help");
    for path in paths {
        let case = help.join(format!("help_{}.toml", path.replace(' ', "_")));
        let text = std::fs::read_to_string(&case)
            .unwrap_or_else(|e| panic!("no transcript of `help {path}`: {}: {e}", case.display()));
        let words: Vec<String> = path.split(' ').map(|w| format!("{w:?}")).collect();
        let args = format!("args = [\"help\", {}]", words.join(", "));
        assert!(
            text.lines().any(|l| l == args),
            "{}: {args}",
            case.display()
        );
    }
}
