//! The command table: every command path, its help text, and the options
//! read off that help text. `fluxloop help`, the shell completions and the
//! man page all come from here, so none of them can list an option the
//! others do not (the parser is held to the same list by a test).

use super::help;

/// One command (or group) of the CLI.
pub(crate) struct CommandSpec {
    /// The words after `fluxloop`: `["auth", "login"]`.
    pub(crate) path: &'static [&'static str],
    /// Other spellings of the whole path (`["whoami"]` for `auth status`).
    pub(crate) aliases: &'static [&'static [&'static str]],
    /// Its help text; the first line is the usage line.
    pub(crate) help: &'static str,
    /// One line for completion menus.
    pub(crate) about: &'static str,
    /// The values its positional argument takes, for completion.
    pub(crate) values: &'static [&'static str],
}

const fn cmd(
    path: &'static [&'static str],
    help: &'static str,
    about: &'static str,
) -> CommandSpec {
    CommandSpec {
        path,
        aliases: &[],
        help,
        about,
        values: &[],
    }
}

/// Every command, parents before their children.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    cmd(&["auth"], help::AUTH, "log in and manage the stored login"),
    cmd(
        &["auth", "login"],
        help::AUTH_LOGIN,
        "log in through the browser",
    ),
    cmd(
        &["auth", "refresh"],
        help::AUTH_REFRESH,
        "refresh the stored login",
    ),
    cmd(
        &["auth", "logout"],
        help::AUTH_LOGOUT,
        "remove the stored login",
    ),
    CommandSpec {
        aliases: &[&["auth", "whoami"], &["whoami"]],
        ..cmd(
            &["auth", "status"],
            help::AUTH_STATUS,
            "the credential in effect",
        )
    },
    cmd(
        &["auth", "token"],
        help::AUTH_TOKEN,
        "print the token in effect",
    ),
    CommandSpec {
        aliases: &[&["api-keys"]],
        ..cmd(&["apikeys"], help::APIKEYS, "manage API keys")
    },
    cmd(&["apikeys", "create"], help::APIKEYS_CREATE, "create a key"),
    CommandSpec {
        aliases: &[&["apikeys", "ls"]],
        ..cmd(&["apikeys", "list"], help::APIKEYS_LIST, "list the keys")
    },
    cmd(
        &["apikeys", "info"],
        help::APIKEYS_INFO,
        "what the platform knows of a key",
    ),
    cmd(&["apikeys", "revoke"], help::APIKEYS_REVOKE, "revoke a key"),
    cmd(&["config"], help::CONFIG, "default profile and endpoint"),
    CommandSpec {
        values: &["profile", "endpoint"],
        ..cmd(&["config", "set"], help::CONFIG_SET, "set a setting")
    },
    CommandSpec {
        values: &["profile", "endpoint"],
        ..cmd(&["config", "unset"], help::CONFIG_UNSET, "remove a setting")
    },
    CommandSpec {
        values: &[
            "profile",
            "endpoint",
            "scenario",
            "credential",
            "credentials_file",
            "config_file",
        ],
        ..cmd(
            &["config", "get"],
            help::CONFIG_GET,
            "the effective value of a setting",
        )
    },
    CommandSpec {
        aliases: &[&["config", "ls"]],
        ..cmd(
            &["config", "list"],
            help::CONFIG_LIST,
            "every setting with its origin",
        )
    },
    cmd(&["sync"], help::SYNC, "pull scenarios, upload results"),
    cmd(&["sync", "pull"], help::SYNC_PULL, "download a scenario"),
    CommandSpec {
        aliases: &[&["sync", "push"]],
        ..cmd(
            &["sync", "upload"],
            help::SYNC_UPLOAD,
            "upload a finished run",
        )
    },
    cmd(
        &["test"],
        help::TEST,
        "run the agent over the pulled inputs",
    ),
    cmd(
        &["report"],
        help::REPORT,
        "one summary, JUnit and exit code for a sharded run batch",
    ),
    cmd(
        &["init"],
        help::INIT,
        "write fluxloop.yaml and the CI snippet",
    ),
    cmd(&["doctor"], help::DOCTOR, "check the setup"),
    CommandSpec {
        values: &["bash", "zsh", "fish"],
        ..cmd(&["completion"], help::COMPLETION, "shell completions")
    },
];

/// The values an option takes, where they are a fixed set (the `FromStr`
/// of each; a test holds them together).
pub(crate) const CHOICES: &[(&str, &[&str])] = &[
    ("color", &["auto", "always", "never"]),
    ("scope", &["read", "write", "read-write", "admin"]),
    ("type", &["user", "service-account"]),
];

/// One option as its help line shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptSpec {
    pub(crate) long: String,
    pub(crate) short: Option<char>,
    /// The value's name (`NAME`), if it takes one.
    pub(crate) value: Option<String>,
    pub(crate) about: String,
}

/// The options listed in a help text: lines like `  -n, --name NAME   about`.
pub(crate) fn options(help: &str) -> Vec<OptSpec> {
    help.lines().filter_map(option_line).collect()
}

fn option_line(line: &str) -> Option<OptSpec> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('-') || trimmed.starts_with("-- ") || line.len() == trimmed.len() {
        return None;
    }
    let (flags, about) = match trimmed.find("  ") {
        Some(i) => (&trimmed[..i], trimmed[i..].trim()),
        None => (trimmed, ""),
    };
    let mut short = None;
    let mut rest = flags;
    if let Some(s) = rest.strip_prefix('-').filter(|s| !s.starts_with('-')) {
        short = s.chars().next();
        rest = s.get(1..)?.trim_start_matches(',').trim_start();
    }
    let rest = rest.strip_prefix("--")?;
    let mut words = rest.split_whitespace();
    let long = words.next()?.to_string();
    Some(OptSpec {
        long,
        short,
        value: words.next().map(str::to_string),
        about: about.to_string(),
    })
}

/// Global options (accepted by every command).
pub(crate) fn global_options() -> Vec<OptSpec> {
    options(help::GLOBAL)
}

/// The command whose path (or an alias of it) is `words`.
pub(crate) fn find(words: &[&str]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.path == words || c.aliases.contains(&words))
}

/// Every word (command names and their aliases) that may follow `path`.
pub(crate) fn child_words(path: &[&str]) -> Vec<&'static str> {
    let mut words = Vec::new();
    for c in COMMANDS {
        for p in std::iter::once(&c.path).chain(c.aliases.iter()) {
            if p.len() == path.len() + 1 && p.starts_with(path) && !words.contains(&p[p.len() - 1])
            {
                words.push(p[p.len() - 1]);
            }
        }
    }
    words
}

/// The fixed values of `--long`, if any.
pub(crate) fn choices(long: &str) -> &'static [&'static str] {
    CHOICES
        .iter()
        .find(|(l, _)| *l == long)
        .map(|(_, v)| *v)
        .unwrap_or(&[])
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
