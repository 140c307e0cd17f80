//! The `tollgate` binary: parses the command line, hands over to the library, and turns
//! the error that ended a command into its exit code (`tollgate --help` lists them).

use clap::Parser;

/// mimalloc: the proxy allocates many small, short-lived buffers per request, where
/// glibc malloc showed up at ~10% of CPU under load (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Usage errors exit with 2 here (clap's code, also the table's), --help with 0.
    let cli = tollgate::cli::Cli::parse();
    match tollgate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            std::process::ExitCode::from(tollgate::cli::exit_code(&e))
        }
    }
}
