//! The table, the help texts, the parser and the completions cannot drift:
//! every option a help text lists is one the parser accepts, every option
//! the parser accepts is listed (or is a named hidden alias), and every
//! listed option is in each shell's completions.

use super::{choices, find, global_options, options, CHOICES, COMMANDS};
use crate::cli::{help, parse, Parsed};
use crate::error::Error;

/// Spellings the parser accepts that no help lists, each for a reason.
const HIDDEN: &[&str] = &[
    // the help line of --endpoint names it as "alias --api-url"
    "api-url", // British spelling of --color
    "colour",  // the old name of --no-skip-upload
    "upload",  // `fluxloop help --man`, named in the completion help
    "man",
];

/// Commands with no subcommands: the ones that take options.
fn leaves() -> impl Iterator<Item = &'static super::CommandSpec> {
    COMMANDS.iter().filter(|c| {
        !COMMANDS
            .iter()
            .any(|d| d.path.len() > c.path.len() && d.path.starts_with(c.path))
    })
}

/// Whether the parser rejects `--flag` (with a value after it) on `path`.
fn rejected(path: &[&str], flag: &str, long: &str) -> bool {
    let value = choices(long).first().copied().unwrap_or("1");
    let mut args: Vec<&str> = path.to_vec();
    args.extend([flag, value]);
    match parse(args.iter().copied()) {
        Err(Error::Usage { message, .. }) => message.starts_with("invalid option"),
        _ => false,
    }
}

#[test]
fn every_listed_option_is_accepted() {
    for c in leaves() {
        // --version is read before the command only (it is listed with the
        // global options, and `fluxloop test --version` is an error).
        let globals = global_options().into_iter().filter(|o| o.long != "version");
        for o in options(c.help).into_iter().chain(globals) {
            let long = format!("--{}", o.long);
            assert!(!rejected(c.path, &long, &o.long), "{:?} {long}", c.path);
            if let Some(s) = o.short {
                let short = format!("-{s}");
                assert!(!rejected(c.path, &short, &o.long), "{:?} {short}", c.path);
            }
        }
    }
}

#[test]
fn every_accepted_option_is_listed() {
    let source = [include_str!("mod.rs"), include_str!("setup.rs")].concat();
    let longs: Vec<&str> = source
        .split("Long(\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(longs.len() > 20, "the scan finds the parser's options");
    for c in leaves() {
        let listed: Vec<String> = options(c.help)
            .into_iter()
            .chain(global_options())
            .map(|o| o.long)
            .collect();
        for long in &longs {
            let flag = format!("--{long}");
            if !rejected(c.path, &flag, long) && !HIDDEN.contains(long) && *long != "help" {
                assert!(
                    listed.iter().any(|l| l == long),
                    "{:?} accepts {flag}, which its help does not list",
                    c.path
                );
            }
        }
    }
}

#[test]
fn every_listed_option_is_in_the_completions() {
    let bash = crate::commands::completion::script(crate::cli::Shell::Bash);
    let zsh = crate::commands::completion::script(crate::cli::Shell::Zsh);
    let fish = crate::commands::completion::script(crate::cli::Shell::Fish);
    for c in COMMANDS {
        let path = c.path.join(" ");
        let bash_line = bash
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("'{path}') words=")))
            .unwrap_or_else(|| panic!("bash: no line for {path}"));
        let zsh_line = zsh
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("('{path}') opts=")))
            .unwrap_or_else(|| panic!("zsh: no line for {path}"));
        let globals = global_options().into_iter().filter(|o| o.long != "version");
        for o in options(c.help).into_iter().chain(globals) {
            let word = format!("--{}", o.long);
            let has = |line: &str| line.split([' ', '\'', '(', ')']).any(|w| w == word);
            assert!(has(bash_line), "bash {path}: {word}");
            assert!(has(zsh_line), "zsh {path}: {word}");
            assert!(fish.contains(&format!(" -l {} ", o.long)), "fish: {word}");
        }
        let name = c.path[c.path.len() - 1];
        assert!(fish.contains(&format!(" -a {name} ")), "fish: {path}");
    }
}

#[test]
fn help_finds_every_command_of_the_table() {
    for c in COMMANDS {
        for words in std::iter::once(&c.path).chain(c.aliases.iter()) {
            let mut args = vec!["help"];
            args.extend(words.iter());
            match parse(args.iter().copied()) {
                Ok(Parsed::Help(h)) => assert_eq!(h, c.help, "{words:?}"),
                other => panic!("{words:?}: {other:?}"),
            }
        }
    }
    assert_eq!(
        help::ALL.len(),
        COMMANDS.len() + 1,
        "every help text but the top one has its row"
    );
}

#[test]
fn choices_are_what_the_parser_takes() {
    for (long, values) in CHOICES {
        for v in *values {
            let args = ["apikeys", "create", &format!("--{long}"), v];
            assert!(parse(args).is_ok(), "--{long} {v}");
        }
    }
}

#[test]
fn option_lines_are_read_whole() {
    let o =
        options("Options:\n  -n, --name NAME   a name\n      --all   every one\n  -- AGENT   no");
    assert_eq!(o.len(), 2);
    assert_eq!(
        (o[0].long.as_str(), o[0].short, o[0].value.as_deref()),
        ("name", Some('n'), Some("NAME"))
    );
    assert_eq!(o[0].about, "a name");
    assert_eq!(
        (o[1].long.as_str(), o[1].short, o[1].value.as_deref()),
        ("all", None, None)
    );
    assert!(find(&["whoami"]).is_some_and(|c| c.path == ["auth", "status"]));
}
