//! The `nnlab` binary: parses the command line and runs a subcommand.

mod cli;
mod commands;

use clap::Parser;

/// Every large buffer starts on a cache line (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    // Rust ignores SIGPIPE; restore the default so a closed pipe ends the process
    // quietly, as for any Unix tool.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default at start-up, before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Lab(args) => commands::lab::run(&args),
        cli::Command::Train(args) => commands::train::run(&args),
        cli::Command::Data(args) => commands::data::run(&args),
        cli::Command::Bench(args) => commands::bench::run(&args),
        cli::Command::Rbm(args) => commands::rbm::run(&args),
        cli::Command::Study(args) => commands::study::run(&args),
        cli::Command::Eval(args) => commands::eval::run(&args),
        cli::Command::Predict(args) => commands::predict::run(&args),
        cli::Command::Ensemble(args) => commands::ensemble::run(&args),
        cli::Command::Serve(args) => commands::serve::run(&args),
        cli::Command::Compare(args) => commands::compare::run(&args),
    };
    if let Some(e) = commands::stdout_error() {
        // (a closed pipe ends the process by SIGPIPE before this)
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
