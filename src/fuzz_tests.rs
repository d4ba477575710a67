//! Property tests ("fuzz targets" on stable Rust) for every parser that
//! reads input a user, a CI system or an agent controls: API keys, the
//! credentials file, `fluxloop.yaml`, the agent's result line, `Retry-After`.
//!
//! Each target must never panic and must keep its contract on arbitrary
//! input. The default case count keeps `cargo test` fast; run longer with
//! `PROPTEST_CASES=100000 cargo test --lib fuzz_tests` (docs/security.md).

use proptest::prelude::*;
use serde_json::Value;

use crate::auth::key::{parse_api_key, KeyInput};
use crate::config::credentials::CredentialsFile;
use crate::config::project::parse_config;
use crate::runner::{result_line, Reply};

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides this default.
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Exact binary fractions: serde_json (without float_roundtrip) may
        // print other floats one ulp off, which is not what these test.
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("success".to_string()),
                    Just("output".to_string()),
                    Just("token_usage".to_string()),
                    Just("input_tokens".to_string()),
                    Just("output_tokens".to_string()),
                    Just("total_tokens".to_string()),
                    Just("duration_ms".to_string()),
                    Just("turn_count".to_string()),
                    Just("error".to_string()),
                    Just("message".to_string()),
                    Just("metadata".to_string()),
                    Just("profiles".to_string()),
                    Just("default".to_string()),
                    Just("default_profile".to_string()),
                    Just("access_token".to_string()),
                    Just("refresh_token".to_string()),
                    Just("expires_at".to_string()),
                    Just("api_endpoint".to_string()),
                    ".{0,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that looks like keys: the prefixes, key characters, and troublemakers.
fn keyish() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(""),
            Just("flx_api_"),
            Just("flx_sa_"),
            Just("flx_at_"),
            Just("\"flx_api_"),
            Just(" flx_sa_"),
        ],
        "[A-Za-z0-9_\\-]{0,40}",
        prop_oneof![
            Just(""),
            Just("\n"),
            Just("\r\n"),
            Just(" "),
            Just("\""),
            Just("'"),
            Just("é"),
            Just("\u{200b}"),
            Just("\t"),
            Just("\0"),
        ],
        "[A-Za-z0-9]{0,5}",
    )
        .prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn api_keys_parse_or_explain_without_echoing(raw in prop_oneof![keyish(), any::<String>()]) {
        for input in [KeyInput::Typed, KeyInput::File] {
            match parse_api_key(&raw, input) {
                Ok(secret) => {
                    let v = secret.expose();
                    prop_assert!(v.starts_with("flx_api_") || v.starts_with("flx_sa_"));
                    prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
                    prop_assert!(v.len() >= 27);
                }
                Err(p) => {
                    prop_assert!(!p.problem.is_empty() && !p.hint.is_empty());
                    let trimmed = raw.trim();
                    if trimmed.len() >= 12 {
                        prop_assert!(!p.problem.contains(trimmed) && !p.hint.contains(trimmed), "{p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn credentials_files_load_or_fail_with_a_parse_error(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            json().prop_map(|v| v.to_string().into_bytes()),
            json().prop_map(|v| serde_json::json!({"profiles": {"default": v}}).to_string().into_bytes()),
            json().prop_map(|v| serde_json::json!({"default_profile": v, "profiles": v}).to_string().into_bytes()),
        ]
    ) {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("credentials"), &bytes).unwrap();
        match CredentialsFile::load(home.path()) {
            Ok(file) => {
                // What loaded can be written back, and loads to the same.
                file.save().unwrap();
                let first = std::fs::read(home.path().join("credentials")).unwrap();
                let again = CredentialsFile::load(home.path()).unwrap();
                again.save().unwrap();
                let second = std::fs::read(home.path().join("credentials")).unwrap();
                prop_assert_eq!(first, second);
            }
            Err(e) => {
                prop_assert_eq!(e.exit_code(), crate::error::code::USAGE, "{}", e);
                prop_assert!(e.to_string().contains("credentials"), "{}", e);
            }
        }
    }

    #[test]
    fn fluxloop_yaml_parses_or_points_at_the_problem(
        text in prop_oneof![
            any::<String>(),
            json().prop_map(|v| v.to_string()),
            // YAML-shaped text from the schema's own keys.
            prop::collection::vec(
                (
                    prop_oneof![Just("scenario"), Just("runner"), Just("  type"), Just("  command"), Just("test"),
                        Just("  iterations"), Just("  parallel"), Just("  timeout"), Just("api"), Just("  key_file"),
                        Just("  endpoint"), Just("project_id"), Just("- "), Just("&a"), Just("*a"), Just("<<")],
                    prop_oneof![Just(": "), Just(":"), Just(" - "), Just(": &a "), Just(": *a"), Just(": [")],
                    "[a-z0-9\\[\\]{}\"' ,.&*!|>-]{0,12}",
                ),
                0..12,
            )
            .prop_map(|lines| lines.into_iter().map(|(k, s, v)| format!("{k}{s}{v}\n")).collect::<String>()),
        ]
    ) {
        if let Err((pos, message)) = parse_config(&text) {
            prop_assert!(!message.is_empty());
            if let Some((line, _)) = pos {
                prop_assert!(line as usize <= text.lines().count() + 2, "line {} of {:?}", line, text);
            }
        }
    }

    #[test]
    fn result_lines_never_panic(
        stdout in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1024),
            prop::collection::vec(json(), 0..4).prop_map(|vs| {
                vs.iter().map(|v| format!("{v}\n")).collect::<String>().into_bytes()
            }),
        ]
    ) {
        let _ = result_line(&stdout);
    }

    #[test]
    fn reply_objects_never_panic(v in json(), a in any::<u64>(), b in any::<u64>()) {
        let _ = Reply::from_value(&v);
        let usage = serde_json::json!({"success": true, "token_usage": {"input_tokens": a, "output_tokens": b}});
        let r = Reply::from_value(&usage).unwrap();
        let t = r.token_usage.unwrap();
        prop_assert_eq!(t.total_tokens, a.saturating_add(b));
    }

    #[test]
    fn retry_after_is_capped(v in any::<String>()) {
        if let Some(d) = crate::api::parse_retry_after(&v) {
            prop_assert!(d <= std::time::Duration::from_secs(120));
        }
    }
}
