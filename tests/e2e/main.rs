//! End-to-end tests: the real `fluxloop` binary against a real
//! `fluxloop-platform` on 127.0.0.1, in temp directories.

mod util;

mod auth;
mod browser;
mod core;
mod snapshots;
mod sync;

// Hardening: faults, kills, bad input, secret hygiene, load.
mod fixtures;
mod proxy;
mod faults;
mod kill;
mod load;
mod secrets;
mod bad_input;
