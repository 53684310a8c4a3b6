//! `teu login` and `teu logout`, in Docker's config format.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use teu_registry::{Credential, Keychain, Secret};

use crate::args::{RegistryArgs, UsageError};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
echo \"$TOKEN\" | teu login ghcr.io -u me --password-stdin\n  \
teu login localhost:5000 -u ci --password-stdin < secret.txt\n\n\
The credentials are checked against the registry, then stored where Docker keeps them: a \
credential helper when $DOCKER_CONFIG/config.json names one (credHelpers, credsStore), \
else base64 in its auths section (file mode 0600). Docker, podman, skopeo and crane read \
them from there.")]
pub struct LoginArgs {
    /// The registry: HOST[:PORT] (docker.io for Docker Hub)
    registry: String,
    /// User name
    #[arg(short, long)]
    username: String,
    /// Read the password from stdin (the only way: a password on the command line leaks)
    #[arg(long, required = true)]
    password_stdin: bool,
    /// Store the credentials without checking them against the registry
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  teu logout ghcr.io")]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT]
    registry: String,
}

fn registry_name(s: &str) -> Result<String> {
    let r = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s)
        .trim_end_matches('/');
    if r.is_empty() || r.contains('/') {
        return Err(UsageError(format!(
            "{s:?} is not a registry host (expected HOST[:PORT])"
        ))
        .into());
    }
    Ok(match r {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        r => r.to_string(),
    })
}

pub fn login(args: LoginArgs) -> Result<ExitCode> {
    let registry = registry_name(&args.registry)?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = Secret::new(password.trim_end_matches(['\n', '\r']));
    if password.expose().is_empty() {
        return Err(UsageError("the password read from stdin is empty".into()).into());
    }
    if !args.no_verify {
        let client = args.registry_args.client()?;
        client.set_credential(
            &registry,
            Some(Credential::Basic {
                username: args.username.clone(),
                password: password.clone(),
            }),
        );
        client
            .check_login(&registry)
            .with_context(|| format!("logging in to {registry} as {}", args.username))?;
    }
    let place = Keychain::from_env()
        .login(&registry, &args.username, &password)
        .with_context(|| format!("storing the credentials for {registry}"))?;
    eprintln!(
        "teu: logged in to {registry} as {} (saved in {place})",
        args.username
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let registry = registry_name(&args.registry)?;
    if Keychain::from_env().logout(&registry)? {
        eprintln!("teu: removed the credentials for {registry}");
    } else {
        eprintln!("teu: there were no stored credentials for {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
