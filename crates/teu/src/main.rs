//! The `teu` command line: argument parsing, human and JSON output, exit codes.
//! The work itself lives in the library crates (`teu-image` and below).
//!
//! Exit codes: 0 success, 1 failure (bad input, I/O, a build error), 2 command-line usage
//! (`teu diff` follows diff(1): 0 identical, 1 different, 2 error).

mod build;
mod diff;
mod lock;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "teu",
    version,
    about = "Build, ship and cache OCI container images without a daemon",
    long_about = "teu builds OCI images straight from files, directories and tarballs, bit for bit \
reproducibly, and writes them as OCI layouts, OCI archives and docker archives.\n\n\
State (the blob store) lives under $TEU_HOME, by default the platform cache directory \
(~/.cache/teu on Linux).",
    after_help = "Exit codes: 0 success, 1 failure, 2 command-line usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(Box<build::BuildArgs>),
    Diff(diff::DiffArgs),
    Lock(lock::LockArgs),
}

/// An error in how teu was called (exit code 2), as opposed to a failure doing the work.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build::run(*args),
        Command::Diff(args) => diff::run(args),
        Command::Lock(args) => lock::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("Try 'teu --help' for more information.");
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `teu: error: outer: cause: root cause`, without repeating a cause already in the text.
pub fn print_error(e: &anyhow::Error) {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    eprintln!("teu: error: {msg}");
}
