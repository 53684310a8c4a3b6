//! Opening the storage, binding the listener (plain or rustls), and graceful shutdown:
//! on SIGINT or SIGTERM the server stops accepting, lets in-flight requests finish (up to
//! 30 s) and exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError, StorageSpec};
use crate::http::{App, Auth, HtpasswdError, Metrics};
use crate::proxy::lru::Lru;
use crate::proxy::stats::ProxyStats;
use crate::proxy::upstream::UpstreamClient;
use crate::proxy::Proxy;
use crate::registry::Registry;
use crate::storage::{fs::FsStorage, s3::S3Storage, Storage, StorageError};

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error("TLS certificate or key: {0}")]
    Tls(std::io::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, ServeError> {
    Ok(match config.storage_spec()? {
        StorageSpec::Dir(d) => Arc::new(FsStorage::open(d)?),
        StorageSpec::S3 { bucket, prefix } => {
            Arc::new(S3Storage::connect(&bucket, &prefix, &config.s3).await?)
        }
    })
}

/// The pull-through cache's upstreams. Nothing here contacts them: a server whose
/// upstream is down starts and serves its cache.
pub async fn open_proxy(config: &Config, storage: &dyn Storage) -> Result<Proxy, ServeError> {
    let stats = Arc::new(ProxyStats::default());
    let mut ups = Vec::new();
    for u in config.upstreams()? {
        tracing::info!(upstream = %u.name, url = %u.url, tag_ttl = ?u.tag_ttl, "proxying");
        ups.push(Arc::new(UpstreamClient::new(u, stats.clone()).await));
    }
    let spool = config
        .cache
        .spool_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    if !ups.is_empty() {
        std::fs::create_dir_all(&spool).map_err(|e| {
            ConfigError::Invalid(format!("cache.spool_dir {}: {e}", spool.display()))
        })?;
    }
    let names: Vec<String> = ups.iter().map(|u| u.cfg.name.clone()).collect();
    let cache_repo = |repo: &str| {
        repo.split_once('/')
            .is_some_and(|(first, _)| names.iter().any(|n| n == first))
    };
    let lru = Lru::open(storage, config.cache_max_bytes()?, cache_repo).await?;
    Ok(Proxy::new(ups, stats, spool, lru))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)
}

/// Run the registry until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), ServeError> {
    runtime()?.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), ServeError> {
    let anonymous = config.anonymous()?;
    let auth = Auth::new(config.auth.htpasswd.as_deref(), anonymous)?;
    let storage = open_storage(&config).await?;
    let proxy = open_proxy(&config, storage.as_ref()).await?;
    let app = Arc::new(App {
        registry: Registry::new(storage),
        auth,
        read_only: config.read_only,
        metrics: Metrics::default(),
        proxy,
    });
    let router = crate::http::router(app);
    let addr = config.listen_addr();
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        h.graceful_shutdown(Some(DRAIN));
    });
    let announce = handle.clone();
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tokio::spawn(async move {
        if let Some(a) = announce.listening().await {
            tracing::info!("listening on {scheme}://{a}");
        }
    });
    let make = router.into_make_service();
    let result = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(ServeError::Tls)?;
            axum_server::bind_rustls(addr, tls)
                .handle(handle)
                .serve(make)
                .await
        }
        _ => axum_server::bind(addr).handle(handle).serve(make).await,
    };
    result.map_err(|source| ServeError::Listen { addr, source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Structured logs on stderr; `TEU_SERVE_LOG` = error, warn, info (default), debug or off.
pub fn init_logging() {
    let level = match std::env::var("TEU_SERVE_LOG").as_deref() {
        Ok("off") => return,
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        Ok("debug") => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .try_init();
}
