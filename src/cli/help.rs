//! Help texts, one per command. The first line of each is its usage line,
//! which parse errors repeat.

pub(super) const USAGE_TOP: &str = "fluxloop [OPTIONS] <COMMAND>";

pub(super) const GLOBAL: &str = "\
Global options (before or after the command):
      --profile NAME       credentials profile [env: FLUXLOOP_PROFILE]
      --api-key KEY        API key (flx_api_…/flx_sa_…) [env: FLUXLOOP_API_KEY]
      --oidc               require keyless CI: the CI's OIDC identity [env: FLUXLOOP_OIDC]
      --no-oidc            never use the CI's OIDC identity
      --endpoint URL       platform URL, alias --api-url [env: FLUXLOOP_API_ENDPOINT]
      --config PATH        fluxloop.yaml to use (default: searched upward)
      --ca-cert PATH       extra CA certificate (PEM) [env: SSL_CERT_FILE]
  -y, --yes                answer yes to every confirmation
      --json               machine-readable output on stdout
  -q, --quiet              only errors
  -v, --verbose            trace requests (secrets masked)
      --color WHEN         auto, always or never [env: FORCE_COLOR, NO_COLOR]
      --no-color           no colours (= --color never)
  -h, --help               this help
  -V, --version            version and target";

pub(crate) const TOP: &str = "\
usage: fluxloop [OPTIONS] <COMMAND>

Pull FluxLoop test scenarios, run your agent against them, upload the results.

Commands:
  auth login|refresh|logout|status   log in and manage the stored login
  whoami                             which credential is in effect (= auth status)
  apikeys create|list|info|revoke    manage API keys
  config set|get|list                default profile and endpoint, effective settings
  sync pull                          download a scenario's inputs, personas, criteria
  sync upload (push)                 upload a finished local run
  test                               run the agent over the pulled inputs, upload results
  report                             merge a sharded run batch: one summary, JUnit, exit code
  init                               write fluxloop.yaml, the CI snippet and .gitignore entries
  doctor                             check config, credential, network, clock, scope, agent
  completion bash|zsh|fish           shell completions (man page: fluxloop help --man)

Typical CI job:
  export FLUXLOOP_API_KEY=flx_sa_…
  fluxloop sync pull --yes
  fluxloop test --no-skip-upload --yes

Global options (before or after the command):
      --profile NAME       credentials profile [env: FLUXLOOP_PROFILE]
      --api-key KEY        API key (flx_api_…/flx_sa_…) [env: FLUXLOOP_API_KEY]
      --oidc               require keyless CI: the CI's OIDC identity [env: FLUXLOOP_OIDC]
      --no-oidc            never use the CI's OIDC identity
      --endpoint URL       platform URL, alias --api-url [env: FLUXLOOP_API_ENDPOINT]
      --config PATH        fluxloop.yaml to use (default: searched upward)
      --ca-cert PATH       extra CA certificate (PEM) [env: SSL_CERT_FILE]
  -y, --yes                answer yes to every confirmation
      --json               machine-readable output on stdout
  -q, --quiet              only errors
  -v, --verbose            trace requests (secrets masked)
      --color WHEN         auto, always or never [env: FORCE_COLOR, NO_COLOR]
      --no-color           no colours (= --color never)
  -h, --help               this help
  -V, --version            version and target

Exit codes: 0 ok, 1 error, 2 usage/config, 3 auth, 4 network, 5 not found,
10 test runs failed, 12 sync conflict.
Run `fluxloop help COMMAND` for a command's options.";

pub(super) const AUTH: &str = "\
usage: fluxloop auth <login|refresh|logout|status|token> [OPTIONS]

Commands:
  login     log in through the browser (device code) and store the tokens
  refresh   trade the stored refresh token for a new access token
  logout    remove the stored login of the profile (--all: every profile)
  status    which credential is in effect, where it came from, and whether it works (alias: whoami)
  token     print the token in effect, for curl and scripts";

pub(super) const AUTH_TOKEN: &str = "\
usage: fluxloop auth token [--profile NAME]

Prints the credential in effect (a stored login is refreshed first when it
is about to expire) alone on stdout, for curl and scripts:
  curl -H \"Authorization: Bearer $(fluxloop auth token)\" …
Under GitHub Actions it is registered with ::add-mask:: (on stderr) first.
Anything that prints or stores its output holds a live credential.";

pub(super) const AUTH_LOGIN: &str = "\
usage: fluxloop auth login [--no-browser] [--force] [--profile NAME]

Logs in with a device code: prints a URL and a code, opens the browser
(not with --no-browser, under CI, or without a display), waits for you to
authorize, and stores the tokens in the profile.

Options:
      --no-browser   only print the URL and the code
  -f, --force        log in again even if the stored login is valid";

pub(super) const AUTH_REFRESH: &str = "\
usage: fluxloop auth refresh [--profile NAME]

Trades the profile's refresh token for a new access token (done automatically
when a stored token expires within 5 minutes).";

pub(super) const AUTH_LOGOUT: &str = "\
usage: fluxloop auth logout [--all] [--profile NAME]

Removes the stored tokens of the profile. Succeeds when already logged out.

Options:
      --all   remove the logins of every profile";

pub(super) const AUTH_STATUS: &str = "\
usage: fluxloop auth status [--json]

Shows the credential in effect, where it came from (flag, environment
variable, key file or profile), its masked value, the endpoint, its expiry or
scope, and the platform's verdict. Alias: fluxloop whoami.";

pub(super) const APIKEYS: &str = "\
usage: fluxloop apikeys <create|list|info|revoke> [OPTIONS]

Commands:
  create   create a key; prints it once on stdout
  list     the project's keys with last use and usage count
  info     what the platform knows of a key
  revoke   revoke a key; it stops working at once";

pub(super) const APIKEYS_CREATE: &str = "\
usage: fluxloop apikeys create [--name NAME] [--type user|service-account] [--scope SCOPE] [--project-id ID]

Creates an API key and prints it alone on stdout (shown once: store it now).

Options:
  -n, --name NAME            a name to recognise it by (default: cli-key-DATE)
  -t, --type TYPE            user (flx_api_…, default) or service-account (flx_sa_…)
  -s, --scope SCOPE          read | write | read-write (default) | admin
      --project-id ID        the project (default: .fluxloop/project.json or your only project)
      --expires-in-days N    make the key expire

Scopes: read views scenarios, criteria, results; write uploads results;
read-write both (enough for CI); admin also manages keys and settings.";

pub(super) const APIKEYS_LIST: &str = "\
usage: fluxloop apikeys list [--project-id ID] [--all]

Lists the project's active keys: id, name, the key's masked end, scope, last
used, usage count, and flags keys due for rotation (older than 90 days or
unused for 30). --json has every field.

Options:
      --project-id ID   the project (default: .fluxloop/project.json or your only project)
  -a, --all             include revoked keys";

pub(super) const APIKEYS_INFO: &str = "\
usage: fluxloop apikeys info [KEY|ID|NAME]

Shows what the platform knows of a key (default: the key in effect): type,
scope, created, last used, usage count, revoked. The key itself is enough to
ask; an id or a name needs a login or an admin key.";

pub(super) const APIKEYS_REVOKE: &str = "\
usage: fluxloop apikeys revoke KEY_OR_ID

Revokes a key, given as the key itself or its id. It stops working at once.
Asks for confirmation unless --yes.";

pub(super) const CONFIG: &str = "\
usage: fluxloop config <set|unset|get|list> [OPTIONS]

Commands:
  set KEY VALUE   profile: the default profile; endpoint: the profile's api_endpoint
  unset KEY       remove profile or endpoint again
  get KEY         the effective value of profile, endpoint, scenario, credential
  list            every effective setting with its origin (secrets masked)";

pub(super) const CONFIG_SET: &str = "\
usage: fluxloop config set KEY VALUE

Keys:
  profile    the default profile (default_profile in the credentials file)
  endpoint   the api_endpoint of the selected profile";

pub(super) const CONFIG_UNSET: &str = "\
usage: fluxloop config unset KEY

Keys:
  profile    removes default_profile from the credentials file
  endpoint   removes the api_endpoint of the selected profile (its login stays)";

pub(super) const CONFIG_GET: &str = "\
usage: fluxloop config get KEY

Prints the effective value of KEY (profile, endpoint, scenario, credential,
credentials_file, config_file) alone on stdout.";

pub(super) const CONFIG_LIST: &str = "\
usage: fluxloop config list [--json]

Prints every effective setting with where it came from; secrets masked.";

pub(super) const SYNC: &str = "\
usage: fluxloop sync <pull|upload> [OPTIONS]

Commands:
  pull            download the scenario's inputs, personas and criteria
  upload (push)   upload a finished local run";

pub(super) const SYNC_PULL: &str = "\
usage: fluxloop sync pull [--scenario S] [--bundle-version-id B] [--project-id P] [--keep-local]

Writes .fluxloop/scenarios/<scenario>/pulled/ under the workspace root.
Stops with exit 12 if pulled files were edited locally, unless --yes (take
the platform's version) or --keep-local (keep your edits).

Options:
  -s, --scenario S             scenario name or id (default: scenario in fluxloop.yaml)
      --bundle-version-id B    a specific bundle version (default: newest published)
      --project-id P           the project (default: .fluxloop/project.json)
      --keep-local             keep locally edited files";

pub(super) const SYNC_UPLOAD: &str = "\
usage: fluxloop sync upload [--scenario S] [--result-dir DIR] [--skip-invalid]

Uploads a finished run (default: the newest result directory of the
scenario). Alias: sync push.

Options:
  -s, --scenario S       scenario name (default: scenario in fluxloop.yaml)
      --result-dir DIR   the result directory to upload
      --skip-invalid     upload the valid runs and skip trace lines that are not";

pub(super) const TEST: &str = "\
usage: fluxloop test [OPTIONS] [-- AGENT COMMAND...]

Runs the agent over the pulled inputs, writes results and reports under
.fluxloop/results/, and uploads them (unless --skip-upload or
test.auto_upload: false). Exits 10 if any run failed, unless the success
rate is at least --fail-under; always 10 if --max-failures skipped runs.

Options:
  -s, --scenario S      scenario (default: scenario in fluxloop.yaml)
  -n, --iterations N    runs per input (default 1)
  -j, --parallel N      runs at a time (default 1)
      --timeout SECS    per-run time limit (default 300)
      --skip-pull       do not pull before running
      --keep-local      keep pulled files you edited (the pull takes the rest)
      --skip-upload     do not upload the results
      --no-skip-upload  upload even if test.auto_upload is false
      --junit PATH      where to write the JUnit XML report (default: junit.xml in the result dir)
      --retries N       retry a failed run up to N times; a pass on a retry is flaky (default 0)
      --fail-under RATE exit 0 if the success rate is at least RATE (0 to 1, e.g. 0.95)
      --max-failures N  stop starting runs after N failures; the rest are skipped
      --rate N/s|N/m    at most N run starts per second or minute
      --shard I/N|auto  run only shard I of N (1-based) of the runs; auto reads the CI's variables
      --batch-key K     the run batch every shard of one build uploads to (sharded: default from the CI)
      --input ID        run only this input (repeatable)
      --persona NAME    run only the inputs of this persona (name or id)
      --grep TEXT       run only the inputs whose text contains TEXT (ignoring case)
      --last-failed     rerun only the runs that failed in the newest result directory
      --list            print the runs that would execute, and run nothing
      --dry-run         print the whole plan, and run and upload nothing
  -- AGENT...          the agent command, overriding runner.command";

pub(super) const REPORT: &str = "\
usage: fluxloop report [--batch-key K | --run-batch ID] [--wait [SECS]] [--junit PATH]
       fluxloop report --merge DIR...

The fan-in step after `test --shard`: finds the run batch the shards
uploaded to (by the batch key, derived from the CI as `test` does, or by
id), with --wait waits until every shard has reported, then prints the
merged summary and writes the GitHub step summary and a merged junit.xml.
Exits 10 if any run failed, 0 if all passed, 4 if the platform cannot be
reached, 5 if the batch or a shard is missing. --merge instead merges shard
result directories (CI artifacts) offline into a new result directory with
its summary, errors.json and junit.xml, each run once.

Options:
  -s, --scenario S      scenario (default: scenario in fluxloop.yaml); part of the batch key
      --batch-key K     the key the shards were given (default: from the CI)
      --run-batch ID    the run batch, by id
      --wait [SECS]     wait up to SECS (default 600) for every shard to report
      --junit PATH      where to write the merged JUnit XML (default: junit.xml)
      --merge DIR...    merge these result directories offline instead";

pub(super) const INIT: &str = "\
usage: fluxloop init [--yes] [--force]

Writes fluxloop.yaml (scenario, runner command, test settings), the CI
snippet for this repository (.github/workflows/ → a workflow, .gitlab-ci.yml
→ an include, Jenkinsfile → a stage, each printed when it cannot be added)
and .gitignore entries for results and credentials files. Asks on a
terminal; --yes takes the defaults. Finds the agent: agent.py, or a
[project.scripts] entry of pyproject.toml.

Options:
  -s, --scenario S   the scenario (default: asked, or the directory's name)
  -f, --force        overwrite files that exist (never without it)";

pub(super) const DOCTOR: &str = "\
usage: fluxloop doctor [--json]

Checks, in order: config files parse; the credential in effect and where it
came from; the endpoint's DNS, TCP and TLS (custom CA, proxy); clock skew
against the server's Date; the key's validity and scope for pull (read) and
upload (write); the agent command resolves; the key file is git-ignored; CI
detected. Each is shown as ✓ or ✗ with the fix. Exits with the code of the
first failing check (2 config, 3 auth, 4 network, 1 other).";

pub(super) const COMPLETION: &str = "\
usage: fluxloop completion <bash|zsh|fish>

Prints the shell completion script, generated from the same table as --help:
  bash:  source <(fluxloop completion bash)
  zsh:   source <(fluxloop completion zsh)
  fish:  fluxloop completion fish | source
The man page comes from the same table: fluxloop help --man | man -l -";

#[cfg(test)]
pub(super) const ALL: &[&str] = &[
    TOP,
    AUTH,
    AUTH_LOGIN,
    AUTH_REFRESH,
    AUTH_LOGOUT,
    AUTH_STATUS,
    AUTH_TOKEN,
    APIKEYS,
    APIKEYS_CREATE,
    APIKEYS_LIST,
    APIKEYS_INFO,
    APIKEYS_REVOKE,
    CONFIG,
    CONFIG_SET,
    CONFIG_UNSET,
    CONFIG_GET,
    CONFIG_LIST,
    SYNC,
    SYNC_PULL,
    SYNC_UPLOAD,
    TEST,
    REPORT,
    INIT,
    DOCTOR,
    COMPLETION,
];

/// A command's help followed by the global options (the top help has them already).
pub(crate) fn full(text: &'static str) -> String {
    if text == TOP {
        return TOP.to_string();
    }
    format!("{text}\n\n{GLOBAL}")
}
