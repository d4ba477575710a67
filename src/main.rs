//! The `fluxloop` binary: everything happens in [`fluxloop::run`].

fn main() -> std::process::ExitCode {
    fluxloop::run(std::env::args_os().skip(1))
}
