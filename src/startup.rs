//! Building and running the application. `Application::build` binds its own listener (port
//! 0 works), so tests and `main` start Herald exactly the same way.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{bootstrap, IssuedToken};
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::store::{self, Store};

mod tls;

/// A built, bound, not yet running Herald.
pub struct Application {
    addr: SocketAddr,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    bootstrap_token: Option<IssuedToken>,
}

impl Application {
    /// Opens the store (migrating it), loads the master key, bootstraps a first tenant on
    /// an empty database and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
        let (key, created) = MasterKey::load_or_create(settings.master_key.as_deref(), &settings.data_dir)?;
        if created {
            tracing::info!(dir = %settings.data_dir.display(), "created a new master key file (mode 0600); back it up");
        }
        let store = store::connect(&settings.database)
            .await
            .context("cannot open the database")?;
        let bootstrap_token = bootstrap(store.as_ref()).await?;
        let tls = match &settings.tls {
            Some(t) => Some(tls::acceptor(t)?),
            None => None,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            store,
            settings: Arc::new(settings),
            key: Arc::new(key),
        };
        Ok(Self {
            addr,
            listener,
            tls,
            state,
            bootstrap_token,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token created on first start, if this start created one.
    pub fn bootstrap_token(&self) -> Option<&IssuedToken> {
        self.bootstrap_token.as_ref()
    }

    /// The store (for tests and tools built on the library).
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Base URL of this instance as clients reach it.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let app = api::router(self.state.clone());
        let stop = shutdown.clone();
        match self.tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await?
            }
            Some(acceptor) => {
                let listener = tls::TlsListener::new(self.listener, acceptor, shutdown.clone());
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await?
            }
        }
        tracing::info!("HTTP server stopped");
        Ok(())
    }
}

/// Resolves when the process receives Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
