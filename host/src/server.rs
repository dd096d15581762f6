//! Serving the API on a listener until told to stop.
//!
//! Shutdown is graceful: on the signal the listener closes and requests in flight
//! finish before [`run`] returns.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.spawn_background();
    let router = crate::api::router(app.clone());
    let shutdown = async move {
        shutdown.await;
        // Endless responses (the change feed) end now; the rest finish.
        app.close_streams();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first. The handlers are
/// installed when this is called (inside the runtime, before listening), so a
/// signal that arrives before the server first waits on it is not missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = terminate => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
