//! The `teu` command line: argument parsing, human and JSON output, exit codes.
//! The work itself lives in the library crates (`teu-image` and below).
//!
//! Exit codes: 0 success, 1 failure (bad input, I/O, a build error), 2 command-line usage
//! (`teu diff` follows diff(1): 0 identical, 1 different, 2 error).

mod build;
mod cache;
mod diff;
mod lock;
mod registry;
mod report;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "teu",
    version,
    about = "Build, ship and cache OCI container images without a daemon",
    long_about = "teu builds OCI images straight from files, directories and tarballs, bit for bit \
reproducibly, writes them as OCI layouts, OCI archives and docker archives, and pushes \
them to registries moving only the blobs a registry lacks.\n\n\
State (the blob store) lives under $TEU_HOME, by default the platform cache directory \
(~/.cache/teu on Linux).",
    after_help = "Exit codes: 0 success, 1 failure, 2 command-line usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    Build(Box<build::BuildArgs>),
    Cache(cache::CacheArgs),
    Diff(diff::DiffArgs),
    Lock(lock::LockArgs),
    /// Push an image to a registry, moving only the blobs it lacks
    #[command(after_help = registry::copy::PUSH_HELP)]
    Push(registry::copy::TransferArgs),
    /// Copy an image (or every platform of an index) between registries and layouts
    #[command(after_help = registry::copy::COPY_HELP)]
    Copy(registry::copy::TransferArgs),
    /// Download a whole image into an OCI layout
    #[command(after_help = registry::copy::PULL_HELP)]
    Pull(registry::copy::TransferArgs),
    /// Show an image's manifest, index, config or layers
    Inspect(registry::inspect::InspectArgs),
    /// Print the digest a reference resolves to
    Digest(registry::inspect::DigestArgs),
    /// List the tags of a repository
    Tags(registry::inspect::TagsArgs),
    /// Store registry credentials in Docker's config (password from stdin)
    Login(registry::login::LoginArgs),
    /// Remove stored registry credentials
    Logout(registry::login::LogoutArgs),
    Serve(serve::ServeArgs),
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
        Command::Cache(args) => cache::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Push(args) => registry::copy::run(args),
        Command::Copy(args) => registry::copy::run(args),
        Command::Pull(args) => registry::copy::run_pull(args),
        Command::Inspect(args) => registry::inspect::inspect(args),
        Command::Digest(args) => registry::inspect::digest(args),
        Command::Tags(args) => registry::inspect::tags(args),
        Command::Login(args) => registry::login::login(args),
        Command::Logout(args) => registry::login::logout(args),
        Command::Serve(args) => serve::run(args),
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
