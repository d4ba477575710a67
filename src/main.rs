//! The `fluxloop` binary: everything happens in [`fluxloop::run`].

/// The static (musl) build allocates with dlmalloc: musl's own allocator
/// returns memory to the kernel so eagerly that streaming an upload cost two
/// system calls per run.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    fluxloop::run(std::env::args_os().skip(1))
}
