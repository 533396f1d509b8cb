//! Running the server: listen, serve until SIGINT/SIGTERM, then stop taking new connections,
//! finish the requests in flight (every acknowledged write is already durable in the WAL) and
//! return.

use std::net::SocketAddr;

use anyhow::Context;
use sextant_engine::Database;
use tokio::sync::oneshot;

use crate::config::ServerConfig;
use crate::AppState;

/// Sets up logging from the configuration (once per process).
pub fn init_logging(config: &ServerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if config.log.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

async fn shutdown_signal() {
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

/// Serves `db` until SIGINT or SIGTERM (what `sextant serve` runs).
pub fn serve(db: Database, config: ServerConfig) -> anyhow::Result<()> {
    init_logging(&config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.async_threads())
        .enable_all()
        .thread_name("sextant-http")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let addr = config.listen_addr()?;
        let auth = config.auth;
        let state = AppState::new(db, config)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(address = %local, auth, data = %state.data_dir().display(), "sextant serve listening");
        let scheme = if state.config().tls.cert.is_empty() { "http" } else { "https" };
        eprintln!(
            "sextant serve: listening on {scheme}://{local} (auth {})",
            if auth { "on: API keys required" } else { "off: loopback only" }
        );
        let app = crate::app(state.clone());
        let st = state.clone();
        let stop = async move {
            shutdown_signal().await;
            st.set_ready(false);
            tracing::info!("shutting down: finishing requests in flight");
        };
        #[cfg(feature = "tls")]
        if !state.config().tls.cert.is_empty() {
            let acceptor = tls::acceptor(&state.config().tls)?;
            tls::serve(listener, app, acceptor, stop).await;
            tracing::info!("stopped");
            return Ok(());
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("server failed")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// A server running on a background thread (tests, embedding programs).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    state: AppState,
}

impl RunningServer {
    /// Starts serving `db` on `config.listen` (port 0: any free port).
    pub fn start(db: Database, config: ServerConfig) -> anyhow::Result<RunningServer> {
        let addr = config.listen_addr()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let threads = config.async_threads();
        let thread = std::thread::Builder::new()
            .name("sextant-server".into())
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let started = async {
                        let state = AppState::new(db, config)?;
                        let listener = tokio::net::TcpListener::bind(addr).await?;
                        anyhow::Ok((state, listener))
                    }
                    .await;
                    let (state, listener) = match started {
                        Ok(x) => x,
                        Err(e) => {
                            let msg = format!("{e:#}");
                            let _ = ready_tx.send(Err(e));
                            anyhow::bail!(msg);
                        }
                    };
                    let local = listener.local_addr()?;
                    let _ = ready_tx.send(Ok((local, state.clone())));
                    let st = state.clone();
                    let stop = async move {
                        let _ = stop_rx.await;
                        st.set_ready(false);
                    };
                    #[cfg(feature = "tls")]
                    if !state.config().tls.cert.is_empty() {
                        let acceptor = tls::acceptor(&state.config().tls)?;
                        tls::serve(listener, crate::app(state.clone()), acceptor, stop).await;
                        return Ok(());
                    }
                    axum::serve(listener, crate::app(state.clone()))
                        .with_graceful_shutdown(stop)
                        .await?;
                    Ok(())
                })
            })?;
        let (addr, state) = ready_rx
            .recv()
            .context("the server thread stopped before listening")??;
        Ok(RunningServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            state,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its state (key store, database).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops gracefully and waits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// HTTPS: rustls in front of the same router (the `tls` feature).
#[cfg(feature = "tls")]
pub(crate) mod tls {
    use std::io::BufReader;
    use std::sync::Arc;

    use anyhow::Context;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio_rustls::rustls;
    use tokio_rustls::TlsAcceptor;

    use crate::config::TlsConfig;

    /// The acceptor for the configured certificate chain and key.
    pub fn acceptor(cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
        let open = |p: &str| {
            std::fs::File::open(p)
                .map(BufReader::new)
                .with_context(|| format!("cannot open {p}"))
        };
        let certs = rustls_pemfile::certs(&mut open(&cfg.cert)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("tls.cert {}: not a PEM certificate chain", cfg.cert))?;
        if certs.is_empty() {
            anyhow::bail!("tls.cert {}: no certificate in it", cfg.cert);
        }
        let key = rustls_pemfile::private_key(&mut open(&cfg.key)?)
            .with_context(|| format!("tls.key {}: not a PEM private key", cfg.key))?
            .with_context(|| format!("tls.key {}: no private key in it", cfg.key))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("tls.cert and tls.key do not make a usable certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Accepts TLS connections until `stop`, then lets the open ones finish.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        acceptor: TlsAcceptor,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
                    tokio::spawn(async move {
                        let stream = match acceptor.accept(tcp).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        };
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                _ = &mut stop => break,
            }
        }
        graceful.shutdown().await;
    }
}
