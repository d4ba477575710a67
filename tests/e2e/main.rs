//! End-to-end tests: the real `fluxloop` binary against a real
//! `fluxloop-platform` on 127.0.0.1, in temp directories.

mod schema_check;
mod substring_reasons;
mod util;

mod auth;
mod browser;
mod core;
mod doctor;
mod init_workflow;
mod setup;
mod snapshots;
mod sync;

// Hardening: faults, kills, bad input, secret hygiene, load.
mod bad_input;
mod faults;
mod fixtures;
mod flows;
mod kill;
mod leaks;
mod load;
mod minimal;
mod proxy;
mod secrets;
mod seed;
mod trap;

// Issue 13: nothing lost, nothing half-written.
mod numbers_safety;
mod process_safety;
mod pull_safety;
mod upload_safety;

// Issue 19: keyless CI.
mod oidc;

// Issue 18: retries, thresholds, run selection, rate.
mod fanout;
mod merge;
mod runner_features;
mod shard;
mod stream;
