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
        eprintln!(
            "sextant serve: listening on http://{local} (auth {})",
            if auth { "on: API keys required" } else { "off: loopback only" }
        );
        let app = crate::app(state.clone());
        let st = state.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                st.set_ready(false);
                tracing::info!("shutting down: finishing requests in flight");
            })
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
        let thread = std::thread::Builder::new()
            .name("sextant-server".into())
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
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
                    axum::serve(listener, crate::app(state.clone()))
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                            state.set_ready(false);
                        })
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
