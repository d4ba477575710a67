//! End-to-end tests: the real `fluxloop` binary against a real
//! `fluxloop-platform` on 127.0.0.1, in temp directories.

mod util;

mod auth;
mod browser;
mod core;
mod snapshots;
mod sync;
