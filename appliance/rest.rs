//! The control plane's REST API, served from the control thread: a dedicated std thread runs a
//! current-thread tokio runtime (never a worker lcore), so the main lcore's stats and signal loop
//! keep running untouched. The API works on the embedded store through `control::app`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use control::rest::DEFAULT_TOKEN_TTL;
use control::{Account, AuthProvider, DynStore, EmbeddedStore, LocalAuth, MockAuth, Role, Topology};
use tokio::sync::watch;

use crate::config::{self, Config};

/// The running REST server; [`RestServer::stop`] shuts it down gracefully.
pub struct RestServer {
    topology: Arc<Topology<DynStore>>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<Result<()>>>,
    addr: SocketAddr,
}

impl RestServer {
    /// Opens the store, binds the listener and starts serving. Every failure here is a startup error.
    pub fn start(cfg: &Config) -> Result<RestServer> {
        let path = &cfg.store.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the store directory {}", dir.display()))?;
        }
        let store = EmbeddedStore::open(path).with_context(|| format!("cannot open the store {}", path.display()))?;
        let topology = Arc::new(Topology::new(Arc::new(store) as DynStore));
        let auth = auth_provider(&cfg.auth);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("cannot start the control plane's runtime")?;
        let listen = cfg.rest.listen;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .with_context(|| format!("cannot listen for REST on {listen} ([rest] listen)"))?;
        let addr = listener.local_addr().context("REST listener address")?;
        let (stop, mut stopped) = watch::channel(false);
        let app = control::app(Arc::clone(&topology), auth);
        let thread = std::thread::Builder::new()
            .name("midogw-rest".into())
            .spawn(move || {
                runtime.block_on(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                        .context("REST server failed")
                })
            })
            .context("cannot start the REST thread")?;
        tracing::info!(url = %format!("http://{addr}{}", control::rest::PREFIX), store = %path.display(), "REST API listening");
        Ok(RestServer { topology, stop, thread: Some(thread), addr })
    }

    /// The topology service the API writes through (the snapshot feed reads the same store).
    pub fn topology(&self) -> Arc<Topology<DynStore>> {
        Arc::clone(&self.topology)
    }

    /// Stops accepting, lets requests in flight finish, and joins the thread.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.thread.take() {
            None => Ok(()),
            Some(t) => {
                let result = t.join().map_err(|_| anyhow::anyhow!("the REST thread panicked"))?;
                tracing::info!(addr = %self.addr, "REST API stopped");
                result
            }
        }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("{e:#}");
        }
    }
}

fn auth_provider(auth: &config::Auth) -> Arc<dyn AuthProvider> {
    match auth {
        config::Auth::Mock => {
            tracing::warn!(
                "[auth] provider = \"mock\": ANY user name and password logs in as admin. For tests only; \
                 never on a reachable network"
            );
            Arc::new(MockAuth::new(DEFAULT_TOKEN_TTL))
        }
        config::Auth::Local(accounts) => {
            if accounts.is_empty() {
                tracing::warn!(
                    "[auth] has no [[auth.account]]: NOBODY can log in to the REST API; add an account \
                     (password_hash from `midogw hash-password`)"
                );
            }
            let accounts = accounts.iter().map(|a| Account {
                user: a.user.clone(),
                password_hash: a.password_hash.clone(),
                tenant_id: a.tenant.clone(),
                role: if a.admin { Role::Admin } else { Role::Tenant },
            });
            Arc::new(LocalAuth::new(accounts, DEFAULT_TOKEN_TTL))
        }
    }
}
