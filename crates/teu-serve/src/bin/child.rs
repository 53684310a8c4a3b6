//! `teu-serve-child CONFIG.toml`: run the registry from a config file. The integration
//! tests start this as a real child process (to SIGKILL and restart it); users run
//! `teu serve`, which calls the same [`teu_serve::run`].

fn main() -> std::process::ExitCode {
    teu_serve::init_logging();
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: teu-serve-child CONFIG.toml");
        return std::process::ExitCode::from(2);
    };
    let result = teu_serve::Config::load(std::path::Path::new(&path))
        .map_err(teu_serve::ServeError::from)
        .and_then(teu_serve::run);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("teu-serve-child: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
