//! `completion bash|zsh|fish` and `help --man`: scripts and a man page
//! written from the command table (`cli::table`), the same table `--help`
//! comes from, so a new option appears in all of them or in none.

use serde::Serialize;

use crate::cli::table::{self, CommandSpec, OptSpec};
use crate::cli::Shell;
use crate::output::Outcome;

/// A generated text (script or man page), printed as is.
#[derive(Serialize)]
pub(crate) struct Generated {
    #[serde(skip)]
    pub(crate) text: String,
    pub(crate) kind: &'static str,
    pub(crate) content: String,
}

pub(crate) fn run(shell: Shell) -> Outcome {
    let kind = match shell {
        Shell::Bash => "bash",
        Shell::Zsh => "zsh",
        Shell::Fish => "fish",
    };
    let text = script(shell);
    Outcome::ok(Generated {
        content: text.clone(),
        text,
        kind,
    })
}

/// The completion script for `shell`.
pub(crate) fn script(shell: Shell) -> String {
    match shell {
        Shell::Bash => bash(),
        Shell::Zsh => zsh(),
        Shell::Fish => fish(),
    }
}

pub(crate) fn man() -> Outcome {
    let text = man_page();
    Outcome::ok(Generated {
        content: text.clone(),
        text,
        kind: "man",
    })
}

/// Every way to spell a command path, each with its canonical path.
fn spellings() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in table::COMMANDS {
        let canonical = c.path.join(" ");
        out.push((canonical.clone(), canonical.clone()));
        for a in c.aliases {
            out.push((a.join(" "), canonical.clone()));
        }
    }
    out
}

/// What may follow a command: its subcommands, or its options and values.
fn words_after(c: Option<&CommandSpec>) -> Vec<String> {
    let path = c.map(|c| c.path).unwrap_or(&[]);
    let mut words: Vec<String> = table::child_words(path)
        .into_iter()
        .map(str::to_string)
        .collect();
    if path.is_empty() {
        words.push("help".into());
    }
    if let Some(c) = c {
        words.extend(c.values.iter().map(|v| v.to_string()));
        words.extend(
            table::options(c.help)
                .iter()
                .map(|o| format!("--{}", o.long)),
        );
    }
    words.extend(
        table::global_options()
            .iter()
            // --version is read before the command only.
            .filter(|o| path.is_empty() || o.long != "version")
            .map(|o| format!("--{}", o.long)),
    );
    words
}

/// Options that take a value (long and short), for skipping it while finding the command.
fn value_options() -> Vec<String> {
    let mut all: Vec<String> = table::global_options()
        .into_iter()
        .chain(table::COMMANDS.iter().flat_map(|c| table::options(c.help)))
        .filter(|o| o.value.is_some())
        .flat_map(|o| {
            let short = o.short.map(|c| format!("-{c}"));
            std::iter::once(format!("--{}", o.long)).chain(short)
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

fn bash() -> String {
    let mut s = String::from(
        "# bash completion for fluxloop; load with: source <(fluxloop completion bash)\n\
         _fluxloop() {\n    local cur prev cmd next i w words\n    \
         cur=\"${COMP_WORDS[COMP_CWORD]}\"\n    prev=\"\"\n    \
         (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n    cmd=\"\"\n    \
         for ((i = 1; i < COMP_CWORD; i++)); do\n        w=\"${COMP_WORDS[i]}\"\n        \
         case \"$w\" in\n",
    );
    s.push_str(&format!(
        "            {}) ((i++)); continue ;;\n            -*) continue ;;\n        esac\n        \
         next=\"${{cmd:+$cmd }}$w\"\n        case \"$next\" in\n",
        value_options().join("|")
    ));
    for (spelling, canonical) in spellings() {
        s.push_str(&format!("            '{spelling}') cmd='{canonical}' ;;\n"));
    }
    s.push_str("        esac\n    done\n    case \"$prev\" in\n");
    for (long, values) in table::CHOICES {
        s.push_str(&format!(
            "        --{long}) COMPREPLY=($(compgen -W '{}' -- \"$cur\")); return ;;\n",
            values.join(" ")
        ));
    }
    s.push_str("    esac\n    case \"$cmd\" in\n");
    s.push_str(&format!(
        "        '') words='{}' ;;\n",
        words_after(None).join(" ")
    ));
    for c in table::COMMANDS {
        s.push_str(&format!(
            "        '{}') words='{}' ;;\n",
            c.path.join(" "),
            words_after(Some(c)).join(" ")
        ));
    }
    s.push_str(
        "    esac\n    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n\
         complete -o default -F _fluxloop fluxloop\n",
    );
    s
}

fn zsh() -> String {
    let mut s = String::from(
        "#compdef fluxloop\n# zsh completion for fluxloop; load with: source <(fluxloop completion zsh)\n\
         _fluxloop() {\n  local cmd='' next w i\n  local -a opts\n  \
         for ((i = 2; i < CURRENT; i++)); do\n    w=${words[i]}\n    case $w in\n",
    );
    s.push_str(&format!(
        "      ({}) ((i++)); continue ;;\n      (-*) continue ;;\n    esac\n    \
         next=\"${{cmd:+$cmd }}$w\"\n    case $next in\n",
        value_options().join("|")
    ));
    for (spelling, canonical) in spellings() {
        s.push_str(&format!("      ('{spelling}') cmd='{canonical}' ;;\n"));
    }
    s.push_str("    esac\n  done\n  case ${words[CURRENT-1]} in\n");
    for (long, values) in table::CHOICES {
        s.push_str(&format!(
            "    (--{long}) compadd -- {}; return ;;\n",
            values.join(" ")
        ));
    }
    s.push_str("  esac\n  case $cmd in\n");
    s.push_str(&format!(
        "    ('') opts=({}) ;;\n",
        words_after(None).join(" ")
    ));
    for c in table::COMMANDS {
        s.push_str(&format!(
            "    ('{}') opts=({}) ;;\n",
            c.path.join(" "),
            words_after(Some(c)).join(" ")
        ));
    }
    s.push_str(
        "  esac\n  compadd -- $opts\n}\n\
         if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n  _fluxloop \"$@\"\n\
         else\n  compdef _fluxloop fluxloop\nfi\n",
    );
    s
}

/// fish quoting: single quotes, with `\` and `'` escaped.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish_option(condition: Option<&str>, o: &OptSpec) -> String {
    let mut line = String::from("complete -c fluxloop");
    if let Some(cond) = condition {
        line.push_str(&format!(" -n {}", fish_quote(cond)));
    }
    line.push_str(&format!(" -l {}", o.long));
    if let Some(c) = o.short {
        line.push_str(&format!(" -s {c}"));
    }
    if o.value.is_some() {
        line.push_str(" -r");
        let values = table::choices(&o.long);
        if !values.is_empty() {
            line.push_str(&format!(" -f -a {}", fish_quote(&values.join(" "))));
        }
    }
    line.push_str(&format!(" -d {}\n", fish_quote(&o.about)));
    line
}

fn fish() -> String {
    let mut s = String::from(
        "# fish completion for fluxloop; load with: fluxloop completion fish | source\n\
         complete -c fluxloop -f\n",
    );
    for o in table::global_options() {
        let before_the_command = (o.long == "version").then_some("__fish_use_subcommand");
        s.push_str(&fish_option(before_the_command, &o));
    }
    let seen = |path: &[&str]| {
        path.iter()
            .map(|w| format!("__fish_seen_subcommand_from {w}"))
            .collect::<Vec<_>>()
            .join("; and ")
    };
    for c in table::COMMANDS {
        let parent = &c.path[..c.path.len() - 1];
        let siblings = table::child_words(parent).join(" ");
        let cond = if parent.is_empty() {
            format!("not __fish_seen_subcommand_from {siblings}")
        } else {
            format!(
                "{}; and not __fish_seen_subcommand_from {siblings}",
                seen(parent)
            )
        };
        let name = c.path[c.path.len() - 1];
        s.push_str(&format!(
            "complete -c fluxloop -n {} -a {name} -d {}\n",
            fish_quote(&cond),
            fish_quote(c.about)
        ));
        let here = seen(c.path);
        for o in table::options(c.help) {
            s.push_str(&fish_option(Some(&here), &o));
        }
        if !c.values.is_empty() {
            s.push_str(&format!(
                "complete -c fluxloop -n {} -a {}\n",
                fish_quote(&here),
                fish_quote(&c.values.join(" "))
            ));
        }
    }
    s
}

/// roff text: a backslash is `\e`, `-` is `\-` (a real minus, so options
/// can be searched for), and no line starts with a control character.
fn roff(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut l = l.replace('\\', "\\e").replace('-', "\\-");
            // groff reads its input as Latin-1: the rest goes as named glyphs.
            if !l.is_ascii() {
                l = l
                    .chars()
                    .map(|c| match c {
                        c if c.is_ascii() => c.to_string(),
                        c => format!("\\[u{:04X}]", c as u32),
                    })
                    .collect();
            }
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn man_page() -> String {
    let mut s = format!(
        ".TH FLUXLOOP 1 \"\" \"fluxloop {}\" \"User Commands\"\n\
         .SH NAME\nfluxloop \\- pull FluxLoop test scenarios, run your agent against them, upload the results\n\
         .SH SYNOPSIS\n.B fluxloop\n[OPTIONS] <COMMAND>\n.SH DESCRIPTION\n.nf\n{}\n.fi\n.SH COMMANDS\n",
        env!("CARGO_PKG_VERSION"),
        roff(crate::cli::help::TOP.split_once("\n\n").map_or("", |(_, rest)| rest))
    );
    for c in table::COMMANDS {
        s.push_str(&format!(
            ".SS \"fluxloop {}\"\n.nf\n{}\n.fi\n",
            c.path.join(" "),
            roff(c.help.trim_start_matches("usage: "))
        ));
    }
    s.push_str(".SH OPTIONS\nThese global options are accepted before or after the command.\n");
    for o in table::global_options() {
        let short = o.short.map(|c| format!("\\-{c}, ")).unwrap_or_default();
        let value = o
            .value
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        s.push_str(&format!(
            ".TP\n.B {short}\\-\\-{}{value}\n{}\n",
            roff(&o.long),
            roff(&o.about)
        ));
    }
    s.push_str(
        ".SH EXIT STATUS\n0 ok, 1 error, 2 usage or configuration, 3 authentication, 4 network,\n\
         5 not found, 10 test runs failed, 12 sync conflict, 130/143 interrupted.\n\
         .SH FILES\n.TP\n.B fluxloop.yaml\nthe project configuration (searched upward)\n\
         .TP\n.B ~/.fluxloop/credentials\nstored logins (FLUXLOOP_HOME moves it)\n",
    );
    s
}
