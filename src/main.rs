//! The `nnlab` binary: parses the command line and runs a subcommand.

mod cli;
mod commands;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Lab(args) => commands::lab::run(&args),
        cli::Command::Train(args) => commands::train::run(&args),
        cli::Command::Data(args) => commands::data::run(&args),
        cli::Command::Bench(args) => commands::bench::run(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
