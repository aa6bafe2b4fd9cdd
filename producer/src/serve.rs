//! Serving the API on this machine (`switchyard up`). The local API has no
//! authentication: it listens on 127.0.0.1 only, and because a browser on
//! the same machine can still reach it, it answers only requests whose
//! `Host` is the address it is bound to (a DNS-rebinding page sends its own
//! name) and whose `Origin`, if any, is that address too. A connection must
//! send its request head within a deadline and its body within another
//! (slow-loris clients are cut off), and the open connections and requests
//! in flight are bounded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// From a connection's first byte (or the end of its last request) to
    /// the end of a request head; then the connection is closed.
    pub header_read_timeout: Duration,
    /// To read a request body; then the request answers 408.
    pub body_read_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests handled at once; more wait their turn.
    pub max_in_flight: usize,
    /// How long open connections may finish their requests on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_in_flight: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The `Host` and `Origin` values a request may carry: the bound port on the loopback names.
#[derive(Debug, Clone)]
struct LocalNames {
    hosts: Arc<[String]>,
    origins: Arc<[String]>,
}

impl LocalNames {
    fn new(port: u16) -> Self {
        let hosts: Vec<String> = ["127.0.0.1", "localhost"]
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect();
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        LocalNames {
            hosts: hosts.into(),
            origins,
        }
    }
}

fn forbidden(field: &str, message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "error": message, "field": field })),
    )
        .into_response()
}

async fn local_only(State(names): State<LocalNames>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| names.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(h))) {
        return forbidden(
            "Host",
            "this API answers only requests addressed to the address it listens on",
        );
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| names.origins.iter().any(|ok| ok.eq_ignore_ascii_case(o)));
        if !ok {
            return forbidden("Origin", "cross-origin requests are refused");
        }
    }
    next.run(req).await
}

/// Serves `app` on `listener` (bound to 127.0.0.1) until `shutdown` resolves,
/// then lets open connections finish for `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let app = app.layer(axum::middleware::from_fn_with_state(
        LocalNames::new(port),
        local_only,
    ));
    let service = ServiceBuilder::new()
        .layer(GlobalConcurrencyLimitLayer::new(options.max_in_flight))
        .layer(RequestBodyTimeoutLayer::new(options.body_read_timeout))
        .service(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}
