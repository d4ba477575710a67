//! Property tests for issue 13: extreme numbers in every numeric setting
//! (`fluxloop.yaml`, the environment) and in the server answers that meet a
//! `Duration` or an `Instant` are refused or accepted, never a panic, and
//! what is accepted is safe for the arithmetic done with it.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::api::types::DeviceStart;
use crate::api::NetOptions;
use crate::config::project::{limits, parse_config};
use crate::config::Env;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(1e300),
        Just(f64::MAX),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(86_400.0),
        Just(86_400.000_001),
        0.0..100_000.0f64,
    ]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u32::MAX) + 1),
        Just(limits::MAX_RETRIES),
        Just(limits::MAX_RETRIES + 1),
        0..200u64,
    ]
}

/// A float as YAML spells it.
fn yaml_f64(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { ".inf" } else { "-.inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// What `Ctx::net_options` and the retry loop do with accepted values.
fn use_options(opts: &NetOptions) {
    let attempts = opts.retries.checked_add(1);
    assert!(attempts.is_some());
    assert!(opts.timeout <= Duration::from_secs(86_400));
    assert!(opts.connect_timeout <= Duration::from_secs(86_400));
    assert!(Instant::now().checked_add(opts.retry_budget).is_some());
    let _ = opts.timeout.saturating_mul(2);
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn yaml_numbers_never_panic(t in extreme_f64(), c in extreme_f64(), r in extreme_u64()) {
        let text = format!(
            "api:\n  timeout: {}\n  connect_timeout: {}\n  retries: {r}\n",
            yaml_f64(t),
            yaml_f64(c)
        );
        if let Ok(config) = parse_config(&text) {
            let mut opts = NetOptions::default();
            for v in [config.api.timeout, config.api.connect_timeout].into_iter().flatten() {
                prop_assert!(limits::request_seconds(v).is_ok());
                opts.timeout = Duration::from_secs_f64(v);
            }
            opts.retries = config.api.retries.unwrap_or(0);
            use_options(&opts);
        }
    }

    #[test]
    fn environment_numbers_never_panic(
        t in extreme_f64(),
        c in extreme_f64(),
        r in extreme_u64(),
        b in extreme_u64(),
    ) {
        let (t, c, r, b) = (format!("{t}"), format!("{c}"), r.to_string(), b.to_string());
        let env = Env::from_pairs(&[
            ("FLUXLOOP_HTTP_TIMEOUT", t.as_str()),
            ("FLUXLOOP_CONNECT_TIMEOUT", c.as_str()),
            ("FLUXLOOP_HTTP_RETRIES", r.as_str()),
            ("FLUXLOOP_RETRY_BACKOFF_MS", b.as_str()),
        ]);
        let endpoint = crate::api::Endpoint::parse("http://127.0.0.1:1").unwrap();
        let settings = crate::config::settings::Settings::of_env(&env);
        if let Ok(opts) = settings.net_options(&endpoint, &env, Path::new("/")) {
            use_options(&opts);
        }
    }

    #[test]
    fn device_answers_never_overflow_the_login_clock(e in extreme_u64(), i in extreme_u64()) {
        let body = format!(
            r#"{{"device_code":"d","user_code":"U","verification_url":"v","expires_in":{e},"interval":{i}}}"#
        );
        if let Ok(start) = serde_json::from_str::<DeviceStart>(&body) {
            // auth::login: now + interval, and lifetime + interval.
            let lifetime = Duration::from_secs(start.expires_in());
            let interval = Duration::from_secs(start.interval());
            prop_assert!(Instant::now().checked_add(lifetime + interval).is_some());
        } else {
            prop_assert!(e > 86_400 || i > 86_400);
        }
    }

    #[test]
    fn run_settings_never_panic(
        rate in extreme_f64(),
        per_minute in any::<bool>(),
        pass in extreme_f64(),
        n in extreme_u64(),
    ) {
        let unit = if per_minute { "m" } else { "s" };
        let rate = format!("{}/{unit}", yaml_f64(rate).trim_start_matches('.'));
        let yaml = |kv: String| parse_config(&format!("test:\n  {kv}\n")).map(|c| c.test);
        // runner::pace adds the interval to an Instant for every start.
        if let Ok(t) = yaml(format!("rate: \"{rate}\"")) {
            let interval = t.rate.unwrap().interval;
            prop_assert!(interval <= Duration::from_secs(86_400));
            prop_assert!(Instant::now().checked_add(interval * 1_000_000).is_some());
        }
        // The flag goes through the same check.
        prop_assert_eq!(limits::rate(&rate).is_ok(), yaml(format!("rate: \"{rate}\"")).is_ok());
        if let Ok(t) = yaml(format!("pass_rate: {}", yaml_f64(pass))) {
            prop_assert!((0.0..=1.0).contains(&t.pass_rate.unwrap()));
        }
        if let Ok(t) = yaml(format!("retries: {n}")) {
            prop_assert!(t.retries.unwrap().checked_add(1).is_some());
        }
        if let Ok(t) = yaml(format!("max_failures: {n}")) {
            prop_assert!(t.max_failures.unwrap() >= 1);
        }
    }
}
