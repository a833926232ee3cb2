//! The control plane's REST API, served from the control thread: a dedicated std thread runs a
//! current-thread tokio runtime (never a worker lcore), so the main lcore's stats and signal loop
//! keep running untouched. The API works on the embedded store through `control::app`.
//!
//! With `[rest.https]` the same app is also served over TLS (rustls 0.23 on the `ring` provider,
//! through axum-server) beside the plain listener; [`tls_config`] is also what `check-config` runs,
//! so a missing file, bad PEM or a key that does not match the certificate is a config problem.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use control::rest::DEFAULT_TOKEN_TTL;
use control::store::{ZookeeperConfig, ZookeeperStore};
use control::{Account, AuthProvider, DynStore, EmbeddedStore, LocalAuth, MockAuth, Role, Store, Topology};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::{self, Config};
use crate::metrics::Metrics;

/// The store `[store]` names, opened for `run` and `topology import`.
pub struct OpenedStore {
    /// The store, shared by the REST API, the feed and the importer.
    pub store: DynStore,
    /// The ZooKeeper store again, for its state keys, when `kind = "zookeeper"`.
    pub zookeeper: Option<Arc<ZookeeperStore>>,
    /// How logs name it: the file, or `zookeeper://HOSTS/ROOT`.
    pub name: String,
}

impl OpenedStore {
    /// Opens the embedded store (creating its directory) or connects to ZooKeeper, waiting for a
    /// first session as long as a session may take, but not forever: the first topology must come
    /// from the store. Afterwards a lost session is survived (the client reconnects by itself).
    ///
    /// `stop` (the signal flag) ends the wait for ZooKeeper early: SIGINT or SIGTERM while it is
    /// away stops the command at once rather than after `session_timeout_ms`.
    pub fn open(cfg: &Config, stop: &AtomicBool) -> Result<OpenedStore> {
        let path = &cfg.store.path;
        match &cfg.store.zookeeper {
            None => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create the store directory {}", dir.display()))?;
                }
                let store = EmbeddedStore::open(path).with_context(|| {
                    format!("cannot open the store {} (is another midogw using it? stop it first)", path.display())
                })?;
                Ok(OpenedStore { store: Arc::new(store), zookeeper: None, name: path.display().to_string() })
            }
            Some(zk) => {
                let config = ZookeeperConfig {
                    hosts: zk.hosts.clone(),
                    root: zk.root.clone(),
                    session_timeout: zk.session_timeout,
                    operation_timeout: zk.operation_timeout,
                    change_retention: zk.change_retention,
                };
                let store = Arc::new(ZookeeperStore::start(config).context("cannot start the ZooKeeper client")?);
                let patience = zk.session_timeout.max(zk.operation_timeout);
                let deadline = std::time::Instant::now() + patience;
                while let Err(e) = store.version() {
                    if stop.load(Ordering::Relaxed) {
                        return Err(anyhow::anyhow!(
                            "stopped by a signal while waiting for ZooKeeper at {} to answer: {e}",
                            zk.hosts
                        ));
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(anyhow::anyhow!(
                            "ZooKeeper at {} did not answer within {patience:?} ([store] session_timeout_ms): {e}",
                            zk.hosts
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let name = format!("zookeeper://{}{}", zk.hosts, zk.root);
                Ok(OpenedStore { store: Arc::clone(&store) as DynStore, zookeeper: Some(store), name })
            }
        }
    }
}

/// The running REST server; [`RestServer::stop`] shuts it down gracefully.
pub struct RestServer {
    topology: Arc<Topology<DynStore>>,
    zookeeper: Option<Arc<ZookeeperStore>>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<Result<()>>>,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
}

impl RestServer {
    /// Opens the store, binds the listener and starts serving. Every failure here is a startup error.
    pub fn start(cfg: &Config, stop: &AtomicBool) -> Result<RestServer> {
        let OpenedStore { store, zookeeper, name: store_name } = OpenedStore::open(cfg, stop)?;
        let topology = Arc::new(Topology::new(store));
        let auth = auth_provider(&cfg.auth);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("cannot start the control plane's runtime")?;
        let listen = cfg.rest.listen;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .with_context(|| format!("cannot listen for REST on {listen} ([rest] listen)"))?;
        let addr = listener.local_addr().context("REST listener address")?;
        let https = match &cfg.rest.https {
            None => None,
            Some(h) => {
                let tls = tls_config(&h.cert, &h.key).map_err(|e| anyhow::anyhow!("[rest.https]: {e}"))?;
                let tls_listener = std::net::TcpListener::bind(h.listen)
                    .with_context(|| format!("cannot listen for HTTPS on {} ([rest.https] listen)", h.listen))?;
                tls_listener.set_nonblocking(true).context("HTTPS listener")?;
                let tls_addr = tls_listener.local_addr().context("HTTPS listener address")?;
                Some((tls_listener, tls_addr, axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls))))
            }
        };
        // `[metrics] listen`: Prometheus's endpoint, served by the same thread.
        let metrics = Metrics::new();
        let metrics_listener = match cfg.metrics {
            None => None,
            Some(at) => Some(
                runtime
                    .block_on(tokio::net::TcpListener::bind(at))
                    .with_context(|| format!("cannot listen for metrics on {at} ([metrics] listen)"))?,
            ),
        };
        let metrics_addr = metrics_listener.as_ref().map(|l| l.local_addr()).transpose().context("metrics listener")?;
        let metrics_app = crate::metrics::app(Arc::clone(&metrics));
        let (stop, stopped) = watch::channel(false);
        let app = control::app(Arc::clone(&topology), auth);
        let tls_url = https.as_ref().map(|(_, a, _)| format!("https://{a}{}", control::rest::PREFIX));
        let thread = std::thread::Builder::new()
            .name("midogw-rest".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let stopped_metrics = stopped.clone();
                    let mut plain_stop = stopped.clone();
                    let plain = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
                        let _ = plain_stop.wait_for(|s| *s).await;
                    });
                    let tls = async move {
                        let Some((tls_listener, _, tls)) = https else { return Ok(()) };
                        let handle = axum_server::Handle::new();
                        let server = axum_server::from_tcp_rustls(tls_listener, tls)
                            .context("HTTPS listener")?
                            .handle(handle.clone())
                            .serve(app.into_make_service());
                        let mut tls_stop = stopped;
                        let watcher = async move {
                            let _ = tls_stop.wait_for(|s| *s).await;
                            handle.graceful_shutdown(Some(Duration::from_secs(5)));
                        };
                        let (served, ()) = tokio::join!(server, watcher);
                        served.context("HTTPS server failed")
                    };
                    let mut metrics_stop = stopped_metrics;
                    let metrics = async move {
                        let Some(listener) = metrics_listener else { return Ok(()) };
                        axum::serve(listener, metrics_app)
                            .with_graceful_shutdown(async move {
                                let _ = metrics_stop.wait_for(|s| *s).await;
                            })
                            .await
                            .context("metrics server failed")
                    };
                    let (plain, tls, metrics) = tokio::join!(plain, tls, metrics);
                    plain.context("REST server failed")?;
                    metrics?;
                    tls
                })
            })
            .context("cannot start the REST thread")?;
        tracing::info!(url = %format!("http://{addr}{}", control::rest::PREFIX), store = %store_name, "REST API listening");
        if let Some(url) = tls_url {
            tracing::info!(%url, "REST API listening over HTTPS");
        }
        if let Some(at) = metrics_addr {
            tracing::info!(url = %format!("http://{at}/metrics"), "metrics listening");
        }
        Ok(RestServer { topology, zookeeper, stop, thread: Some(thread), addr, metrics })
    }

    /// Where the main loop hands the live counters for `GET /metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The ZooKeeper store, when `[store] kind = "zookeeper"` (for state keys such as host alive).
    pub fn zookeeper(&self) -> Option<Arc<ZookeeperStore>> {
        self.zookeeper.clone()
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

/// Why `[rest.https]` cannot be served; the message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsProblem {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("cert {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pair cannot be used together (most often: the key is not the certificate's).
    #[error("key {key} does not go with cert {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls says.
        reason: String,
    },
}

/// The rustls server configuration for a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1), on the `ring` provider, HTTP/1.1 and HTTP/2 offered by ALPN.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsProblem> {
    let cert_err = |reason: String| TlsProblem::Cert { path: cert.display().to_string(), reason };
    let key_err = |reason: String| TlsProblem::Key { path: key.display().to_string(), reason };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot read it: {e}")))?;
    let key_pem = std::fs::read(key).map_err(|e| key_err(format!("cannot read it: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM CERTIFICATE block in it".into()));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        key_err(format!("no usable PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it: {e}"))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| key_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| TlsProblem::Mismatch {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            reason: match e {
                rustls::Error::InconsistentKeys(_) => "the private key is not the certificate's".to_string(),
                other => other.to_string(),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
