//! Parser tests: each flag in its forms, last-wins, globals anywhere, errors.

use super::*;

fn run(args: &[&str]) -> (GlobalArgs, Command) {
    match parse(args.iter().copied()) {
        Ok(Parsed::Run(g, c)) => (g, c),
        other => panic!("{args:?}: {other:?}"),
    }
}

fn usage_err(args: &[&str]) -> (String, &'static str) {
    match parse(args.iter().copied()) {
        Err(Error::Usage { message, usage, .. }) => (message, usage),
        other => panic!("{args:?}: expected a usage error, got {other:?}"),
    }
}

#[test]
fn globals_before_or_after_the_command() {
    for args in [
        &["--profile", "staging", "--json", "sync", "pull"][..],
        &["sync", "--profile", "staging", "pull", "--json"][..],
        &["sync", "pull", "--profile=staging", "--json"][..],
    ] {
        let (g, c) = run(args);
        assert_eq!(g.profile.as_deref(), Some("staging"), "{args:?}");
        assert!(g.json);
        assert!(matches!(c, Command::Sync(SyncCommand::Pull(_))));
    }
}

#[test]
fn global_flags_all_forms() {
    let (g, _) = run(&[
        "-y",
        "-q",
        "-vv",
        "--no-color",
        "--api-key",
        "k",
        "--api-url",
        "https://x",
        "--config",
        "c.yaml",
        "--ca-cert",
        "ca.pem",
        "whoami",
    ]);
    assert!(g.yes && g.quiet);
    assert_eq!(g.color, Some(ColorChoice::Never));
    assert_eq!(g.verbose, 2);
    assert_eq!(g.api_key.as_deref(), Some("k"));
    assert_eq!(g.endpoint.as_deref(), Some("https://x"));
    assert_eq!(g.config, Some(PathBuf::from("c.yaml")));
    assert_eq!(g.ca_cert, Some(PathBuf::from("ca.pem")));
    let (g, _) = run(&["whoami", "--endpoint=https://a", "--endpoint", "https://b"]);
    assert_eq!(g.endpoint.as_deref(), Some("https://b"), "last wins");
}

#[test]
fn color_flag_forms_and_last_wins() {
    for (args, want) in [
        (&["--color", "always", "whoami"][..], ColorChoice::Always),
        (&["--color=never", "whoami"], ColorChoice::Never),
        (&["whoami", "--color", "auto"], ColorChoice::Auto),
        (
            &["--no-color", "--color", "always", "whoami"],
            ColorChoice::Always,
        ),
        (
            &["--color", "always", "--no-color", "whoami"],
            ColorChoice::Never,
        ),
    ] {
        assert_eq!(run(args).0.color, Some(want), "{args:?}");
    }
    let e = crate::cli::parse(["--color", "sometimes", "whoami"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value 'sometimes' (choose from: auto, always, never) for --color"
    );
}

#[test]
fn mistyped_options_and_help_topics_get_suggestions() {
    let err = |args: &[&str]| {
        crate::cli::parse(args.iter().copied())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&["test", "--paralel", "2"]),
        "invalid option '--paralel' (did you mean '--parallel'?)"
    );
    assert_eq!(
        err(&["--jsn", "whoami"]),
        "invalid option '--jsn' (did you mean '--json'?)"
    );
    assert_eq!(
        err(&["sync", "pull", "--keep-locl"]),
        "invalid option '--keep-locl' (did you mean '--keep-local'?)"
    );
    assert_eq!(err(&["test", "--zzzzzz"]), "invalid option '--zzzzzz'");
    assert_eq!(err(&["help", "nothing"]), "unknown command 'nothing'");
    assert_eq!(
        err(&["help", "tset"]),
        "unknown command 'tset' (did you mean 'test'?)"
    );
    let e = crate::cli::parse(["help", "nothing"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn every_command_parses() {
    let cases: &[&[&str]] = &[
        &["auth", "login"],
        &["auth", "login", "--no-browser", "--force"],
        &["auth", "refresh"],
        &["auth", "logout", "--all"],
        &["auth", "status"],
        &["auth", "whoami"],
        &["whoami"],
        &[
            "apikeys",
            "create",
            "--name",
            "ci-bot",
            "--type",
            "service-account",
            "--scope",
            "read-write",
        ],
        &["apikeys", "create", "--scope", "admin"],
        &["apikeys", "list"],
        &["apikeys", "info", "flx_api_x"],
        &["apikeys", "info"],
        &["apikeys", "revoke", "flx_old_key"],
        &["config", "set", "profile", "staging"],
        &["config", "get", "endpoint"],
        &["config", "list"],
        &["sync", "pull", "--yes"],
        &[
            "sync",
            "pull",
            "--scenario",
            "s",
            "--bundle-version-id",
            "b",
            "--project-id",
            "p",
            "--keep-local",
        ],
        &["sync", "upload"],
        &["sync", "push", "--result-dir", "d"],
        &["sync", "upload", "--skip-invalid", "--result-dir=d"],
        &["test", "--no-skip-upload", "--yes"],
        &[
            "test",
            "--scenario",
            "s",
            "--iterations",
            "2",
            "--parallel",
            "4",
            "--timeout",
            "1.5",
            "--skip-pull",
            "--skip-upload",
            "--junit",
            "j.xml",
        ],
    ];
    for args in cases {
        run(args);
    }
}

#[test]
fn apikeys_create_values() {
    let (_, c) = run(&[
        "apikeys",
        "create",
        "-n",
        "a",
        "--type=service-account",
        "--scope",
        "read",
    ]);
    match c {
        Command::Apikeys(ApikeysCommand::Create {
            name,
            key_type,
            scope,
            ..
        }) => {
            assert_eq!(name.as_deref(), Some("a"));
            assert_eq!(key_type, KeyType::ServiceAccount);
            assert_eq!(scope, Scope::Read);
        }
        c => panic!("{c:?}"),
    }
    let (msg, _) = usage_err(&["apikeys", "create", "--scope", "root"]);
    assert_eq!(
        msg,
        "invalid scope 'root' (choose from: read, write, read-write, admin) for --scope"
    );
}

#[test]
fn test_flags_last_wins_and_agent_after_dashes() {
    let (_, c) = run(&[
        "test",
        "--skip-upload",
        "--no-skip-upload",
        "-j",
        "3",
        "--",
        "python3",
        "agent.py",
        "--fast",
    ]);
    let Command::Test(a) = c else { panic!() };
    assert_eq!(a.upload, Some(true));
    assert_eq!(a.parallel, Some(3));
    assert_eq!(a.command, ["python3", "agent.py", "--fast"]);
    let (_, c) = run(&["test", "--no-skip-upload", "--skip-upload"]);
    let Command::Test(a) = c else { panic!() };
    assert_eq!(a.upload, Some(false));
}

#[test]
fn errors_carry_the_usage_line() {
    let (msg, usage) = usage_err(&["sync", "pull", "--bogus"]);
    assert_eq!(msg, "invalid option '--bogus'");
    assert!(usage.starts_with("fluxloop sync pull "), "{usage}");
    let (msg, usage) = usage_err(&["sync", "pull", "--scenario"]);
    assert_eq!(msg, "missing argument for option '--scenario'");
    assert!(usage.starts_with("fluxloop sync pull"));
    let (msg, _) = usage_err(&["test", "--parallel", "0"]);
    assert_eq!(
        msg,
        "invalid value '0' for --parallel: expected a number of at least 1"
    );
    let (msg, _) = usage_err(&["snyc", "pull"]);
    assert_eq!(msg, "unknown command 'snyc' (did you mean 'sync'?)");
    let (msg, _) = usage_err(&["apikeys", "revoke"]);
    assert_eq!(msg, "missing argument KEY_OR_ID");
    let (msg, _) = usage_err(&["config", "set", "profile"]);
    assert_eq!(msg, "missing argument VALUE");
    let (msg, _) = usage_err(&["test", "agent.py"]);
    assert!(msg.contains("put the agent command after --"), "{msg}");
    let (msg, _) = usage_err(&[]);
    assert_eq!(msg, "no command given");
}

#[test]
fn help_and_version() {
    assert!(matches!(parse(["--version"]), Ok(Parsed::Version)));
    assert!(matches!(parse(["-V"]), Ok(Parsed::Version)));
    assert!(matches!(parse(["--help"]), Ok(Parsed::Help(h)) if h == help::TOP));
    assert!(
        matches!(parse(["sync", "pull", "--help"]), Ok(Parsed::Help(h)) if h == help::SYNC_PULL)
    );
    assert!(matches!(parse(["sync", "--help"]), Ok(Parsed::Help(h)) if h == help::SYNC));
    assert!(
        matches!(parse(["help", "apikeys", "create"]), Ok(Parsed::Help(h)) if h == help::APIKEYS_CREATE)
    );
    assert!(matches!(parse(["auth"]), Ok(Parsed::Help(h)) if h == help::AUTH));
}

#[test]
fn every_help_starts_with_its_usage_line() {
    for text in help::ALL {
        assert!(text.starts_with("usage: fluxloop"), "{text}");
    }
}

#[test]
fn setting_up_commands_parse() {
    assert!(matches!(
        run(&["auth", "token"]).1,
        Command::Auth(AuthCommand::Token)
    ));
    assert!(matches!(run(&["doctor", "--json"]), (g, Command::Doctor) if g.json));
    for (args, want) in [
        (&["init"][..], InitArgs::default()),
        (
            &["init", "-y", "--force", "--scenario", "a", "-s", "b"],
            InitArgs {
                scenario: Some("b".into()),
                force: true,
            },
        ),
        (
            &["init", "--scenario=c", "-f"],
            InitArgs {
                scenario: Some("c".into()),
                force: true,
            },
        ),
    ] {
        match run(args).1 {
            Command::Init(a) => assert_eq!(a, want, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    for (shell, want) in [
        ("bash", Shell::Bash),
        ("zsh", Shell::Zsh),
        ("fish", Shell::Fish),
    ] {
        assert!(matches!(run(&["completion", shell]).1, Command::Completion(s) if s == want));
    }
    assert!(matches!(run(&["help", "--man"]).1, Command::Man));
    let (msg, usage) = usage_err(&["completion", "tcsh"]);
    assert_eq!(
        msg,
        "unsupported shell 'tcsh' (choose from: bash, zsh, fish)"
    );
    assert_eq!(usage, "fluxloop completion <bash|zsh|fish>");
    let (msg, _) = usage_err(&["completion"]);
    assert_eq!(msg, "missing argument SHELL (bash, zsh or fish)");
    let (msg, _) = usage_err(&["completion", "bash", "zsh"]);
    assert_eq!(msg, "unexpected argument \"zsh\"");
    let (msg, _) = usage_err(&["init", "--scenario", " "]);
    assert_eq!(msg, "--scenario must not be empty");
    let (msg, _) = usage_err(&["help", "test", "--man"]);
    assert_eq!(msg, "--man shows the whole manual; leave out the command");
    let (msg, _) = usage_err(&["doctr"]);
    assert_eq!(msg, "unknown command 'doctr' (did you mean 'doctor'?)");
    assert!(
        matches!(parse(["auth", "token", "--help"]), Ok(Parsed::Help(h)) if h == help::AUTH_TOKEN)
    );
}

#[test]
fn run_flags_all_forms_and_last_wins() {
    let (_, c) = run(&[
        "test",
        "--retries",
        "2",
        "--retries=3",
        "--fail-under=0.9",
        "--max-failures",
        "4",
        "--rate",
        "5/s",
        "--rate=30/m",
        "--input",
        "a",
        "--input=b",
        "--persona",
        "Busy professional",
        "--grep=refund",
        "--last-failed",
        "--list",
        "--dry-run",
    ]);
    let Command::Test(a) = c else { panic!() };
    let f = a.select;
    assert_eq!(f.retries, Some(3), "last wins");
    assert_eq!(f.fail_under, Some(0.9));
    assert_eq!(f.max_failures, Some(4));
    let rate = f.rate.unwrap();
    assert_eq!(
        (rate.text.as_str(), rate.interval),
        ("30/m", std::time::Duration::from_secs(2))
    );
    assert_eq!(f.inputs, ["a", "b"]);
    assert_eq!(f.persona.as_deref(), Some("Busy professional"));
    assert_eq!(f.grep.as_deref(), Some("refund"));
    assert!(f.last_failed && f.list && f.dry_run);
}

#[test]
fn run_flags_share_the_yaml_validators() {
    for (args, want) in [
        (
            &["test", "--retries", "11"][..],
            "invalid value '11' for --retries: must be a whole number of retries from 0 to 10, not 11",
        ),
        (
            &["test", "--retries", "-1"][..],
            "invalid value '-1' for --retries: must be a whole number",
        ),
        (
            &["test", "--fail-under", "95"][..],
            "invalid value '95' for --fail-under: must be a success rate from 0 to 1 (e.g. 0.95), not 95.0",
        ),
        (
            &["test", "--max-failures", "0"][..],
            "invalid value '0' for --max-failures: must be a whole number of failures of at least 1, not 0",
        ),
        (
            &["test", "--rate", "5/h"][..],
            "invalid value '5/h' for --rate: must be a number of run starts per second or minute, like 5/s or 30/m, not \"5/h\"",
        ),
        (&["test", "--input"][..], "missing argument for option '--input'"),
    ] {
        assert_eq!(usage_err(args).0, want, "{args:?}");
    }
    let config = crate::config::project::parse_config(
        "test: {retries: 2, pass_rate: 0.95, max_failures: 3, rate: 10/s}\n",
    )
    .unwrap();
    assert_eq!(config.test.retries, Some(2));
    assert_eq!(config.test.pass_rate, Some(0.95));
    assert_eq!(config.test.max_failures, Some(3));
    assert_eq!(config.test.rate.unwrap().text, "10/s");
    let (_, msg) = crate::config::project::parse_config("test: {retries: 11}\n").unwrap_err();
    assert_eq!(
        msg,
        "test.retries: must be a whole number of retries from 0 to 10, not 11"
    );
    let (_, msg) = crate::config::project::parse_config("test: {pass_rat: 1}\n").unwrap_err();
    assert_eq!(msg, "test.pass_rat: unknown field, did you mean pass_rate?");
}

#[test]
fn report_wait_takes_an_optional_value_and_merge_many_dirs() {
    let wait = |args: &[&str]| match run(args).1 {
        Command::Report(a) => (a.wait, a.batch_key),
        other => panic!("{other:?}"),
    };
    assert_eq!(wait(&["report"]), (None, None));
    assert_eq!(
        wait(&["report", "--wait"]),
        (Some(report::DEFAULT_WAIT_SECS), None)
    );
    assert_eq!(wait(&["report", "--wait", "30"]), (Some(30.0), None));
    assert_eq!(wait(&["report", "--wait=5"]), (Some(5.0), None));
    // A flag after --wait is a flag, not its value.
    assert_eq!(
        wait(&["report", "--wait", "--batch-key", "k"]),
        (Some(report::DEFAULT_WAIT_SECS), Some("k".into()))
    );
    match run(&["report", "--merge", "a", "b", "c"]).1 {
        Command::Report(a) => assert_eq!(a.merge, ["a", "b", "c"].map(PathBuf::from)),
        other => panic!("{other:?}"),
    }
    for (args, want) in [
        (&["report", "--wait=-1"][..], "invalid value '-1' for --wait: must be a number of seconds from 0 to 86400"),
        (&["report", "--batch-key", "k", "--run-batch", "r"], "--batch-key and --run-batch name the batch twice; give one"),
        (&["report", "stray"], "unexpected argument 'stray'"),
        (&["report", "--merge", "a", "--wait"], "--merge works offline on result directories; --batch-key, --run-batch, --wait and --junit are for the platform's batch"),
        (&["test", "--shard", "0/3"], "invalid value '0/3' for --shard: the shard must be from 1 to 3 (1-based), not 0"),
        (&["test", "--shard", "2of3"], "invalid value '2of3' for --shard: must be I/N (shard I of N, from 1), or auto, not \"2of3\""),
    ] {
        assert_eq!(usage_err(args).0, want, "{args:?}");
    }
}
