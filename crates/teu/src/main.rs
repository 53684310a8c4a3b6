//! The `teu` command line: argument parsing, human and JSON output, exit codes. Each
//! command is one file in [`commands`], a thin layer over the library crates: the
//! libraries return data (`teu-build`, `teu-image`'s transports and diff, `teu-registry`),
//! and the commands print it.
//!
//! Exit codes: 0 success, 1 failure (bad input, I/O, a build error), 2 command-line usage
//! (`teu diff` follows diff(1): 0 identical, 1 different, 2 error). A closed stdout (`teu
//! tags … | head -1`) ends teu quietly.

mod args;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::UsageError;
use crate::commands::*;

#[derive(Parser)]
#[command(
    name = "teu",
    version,
    about = "Build, ship and cache OCI container images without a daemon",
    long_about = "teu builds OCI images straight from files, directories and tarballs, bit for bit \
reproducibly, writes them as OCI layouts, OCI archives and docker archives, and pushes \
them to registries moving only the blobs a registry lacks.\n\n\
References: oci:DIR[:TAG] (an OCI layout), oci-archive:FILE[:TAG], \
docker-archive:FILE[:NAME:TAG], HOST/REPO[:TAG|@DIGEST] or docker://… (a registry; \
Docker Hub short names such as alpine expand as Docker does), scratch as a base, and the \
local engines: docker-daemon:NAME[:TAG], podman:NAME[:TAG] and \
containerd:[NAMESPACE/]NAME[:TAG].\n\n\
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
    /// Push an image (every platform of an index) to a registry, moving only the blobs it lacks
    #[command(after_help = transfer::PUSH_HELP)]
    Push(transfer::TransferArgs),
    /// Copy an image (every platform of an index) between any two references
    #[command(after_help = transfer::COPY_HELP)]
    Copy(transfer::TransferArgs),
    /// Download a whole image (every layer) into a local layout or archive
    #[command(after_help = transfer::PULL_HELP)]
    Pull(transfer::TransferArgs),
    /// Load an image into Docker, podman or containerd, moving only what the engine lacks
    #[command(after_help = load::HELP)]
    Load(load::LoadArgs),
    /// Convert an image or index to another layer compression (estargz for lazy pulling)
    #[command(after_help = convert::HELP)]
    Convert(convert::ConvertArgs),
    /// Show an image's index or manifest, its config and layers, wherever it lives
    Inspect(inspect::InspectArgs),
    /// Print the digest a reference resolves to
    Digest(inspect::DigestArgs),
    /// List the tags of a repository (or of an OCI layout or archive)
    Tags(tags::TagsArgs),
    /// Store registry credentials in Docker's config (password from stdin)
    Login(login::LoginArgs),
    /// Remove stored registry credentials
    Logout(login::LogoutArgs),
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    output::die_quietly_on_closed_stdout();
    let cli = Cli::parse();
    // The server drains its own requests on a signal; every other command may hold
    // upload sessions to close.
    if !matches!(cli.command, Command::Serve(_)) {
        output::close_uploads_on_interrupt();
    }
    let result = match cli.command {
        Command::Build(args) => build::run(*args),
        Command::Cache(args) => cache::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Push(args) => transfer::run(transfer::Verb::Push, args),
        Command::Copy(args) => transfer::run(transfer::Verb::Copy, args),
        Command::Pull(args) => transfer::run(transfer::Verb::Pull, args),
        Command::Load(args) => load::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Digest(args) => inspect::digest(args),
        Command::Tags(args) => tags::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
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
