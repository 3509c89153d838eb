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
use crate::delivery::DeliveryEngine;
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
        if !master_key_matches(store.as_ref(), &key).await? {
            if created {
                // A key made just now for a database set up with another: it would only
                // be in the way of the right one being copied in.
                let _ = std::fs::remove_file(settings.data_dir.join(crate::crypto::KEY_FILE));
            }
            anyhow::bail!(
                "this master key is not the one this database was set up with: webhook secrets and \
                 secured headers sealed with that key could not be opened. Every node sharing a \
                 database needs the same key: set HERALD_MASTER_KEY (or copy master.key into the data \
                 directory) from the node that first served it"
            );
        }
        store.hub().set_public_base_url(&settings.public_base_url);
        let tls = match &settings.tls {
            Some(t) => Some(tls::acceptor(t)?),
            None => None,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let key = Arc::new(key);
        let delivery = DeliveryEngine::new(Arc::clone(&store), Arc::clone(&key), &settings)
            .context("cannot build the delivery client")?;
        // Last: the first start's admin token is shown only when the build succeeds, so
        // nothing that can still fail (a port in use, a bad TLS or CA file) may come after
        // it is made, or it would be stored and never shown.
        let bootstrap_token = bootstrap(store.as_ref()).await?;
        let state = AppState {
            store,
            settings: Arc::new(settings),
            key,
            delivery,
            field_cache: Arc::default(),
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

    /// The delivery engine (tests drain it with `run_once`).
    pub fn delivery(&self) -> DeliveryEngine {
        self.state.delivery.clone()
    }

    /// Base URL of this instance as clients reach it.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves (and, unless `workers_enabled` is off, delivers) until `shutdown` is
    /// cancelled; then finishes in-flight requests and stops the delivery engine
    /// gracefully (running attempts get a bounded grace period, unfinished leases are
    /// given back).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let engine = if self.state.settings.delivery.workers_enabled {
            Some(self.state.delivery.start(shutdown.clone()))
        } else {
            tracing::info!("delivery workers are off on this node (workers = false)");
            None
        };
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
        if let Some(engine) = engine {
            let _ = engine.await;
        }
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

/// What the master-key check value seals.
const KEY_CHECK_TEXT: &str = "herald master key check v1";

/// Whether `key` is the master key this database was first served with (`Err` only when
/// the database could not be asked). Why: webhook secrets and secured header values are
/// sealed with it; a node with another key (PostgreSQL nodes that each generated their
/// own `master.key`, a mistyped `HERALD_MASTER_KEY`, a data directory moved without its
/// key file) would fail every delivery it claimed — and count those failures towards
/// disabling healthy webhooks.
async fn master_key_matches(store: &dyn Store, key: &MasterKey) -> anyhow::Result<bool> {
    let ask = "cannot read the master-key check";
    if store.stored_master_key_check().await.context(ask)?.is_none() {
        // No check value yet: a new database, or one set up before the check existed.
        // This key becomes the database's only if it opens what is sealed there already.
        if let Some(secret) = store.oldest_sealed_secret().await.context(ask)? {
            if key.open(&secret).is_err() {
                return Ok(false);
            }
        }
    }
    let stored = store
        .master_key_check(&key.seal(KEY_CHECK_TEXT))
        .await
        .context(ask)?;
    Ok(key.open(&stored).ok().as_deref() == Some(KEY_CHECK_TEXT))
}
