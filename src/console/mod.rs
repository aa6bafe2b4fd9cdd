//! The Switchyard console: a web UI served by `switchyard up` beside the
//! API, on the same 127.0.0.1 port (the server's Host and Origin checks
//! apply). Pages are server-rendered with maud (compiled into the binary,
//! escaping every interpolated value); one small script and one stylesheet
//! are embedded too, so nothing is fetched from anywhere else.
//!
//! Layout: [`recorder`] (what the runtime feeds: recent events and their
//! hops), [`queue_admin`] (the queue port, one adapter per backend),
//! [`state`] (what pages read), [`pages`] (one module per page group), and
//! this file (routes, headers, the same-origin check).
//!
//! On `--backend aws` the queue, DLQ, order and image pages read SQS,
//! DynamoDB and S3; the flow draws the topology with SQS's queue depths;
//! events, lineage and counts need the embedded runtime's recorder, and
//! their pages say so.
//!
//! Safety: a Content-Security-Policy that allows only this origin's script
//! and style (no inline script), `nosniff`, no framing; every
//! state-changing action is a POST that must come from this origin (its
//! `Origin` header) and carry the server's token.

pub mod bench;
pub mod pages;
pub mod queue_admin;
pub mod recorder;
pub mod state;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub use recorder::{Recorder, RecorderLimits};
pub use state::Console;

/// What console pages may do in a browser: this origin's script, style,
/// images and event stream; no inline script, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes: `/` (to the flow page) and `/console/...`.
pub fn router(console: Console) -> Router {
    use pages::{events, flow, orders, queues};
    let pages = Router::new()
        .route("/console/", get(flow::flow_page))
        .route("/console/flow/graph", get(flow::flow_fragment))
        .route("/console/events", get(events::events_page))
        .route("/console/events/stream", get(events::events_stream))
        .route("/console/events/{id}", get(events::lineage_page))
        .route("/console/queues", get(queues::queues_page))
        .route("/console/queues/{queue}", get(queues::queue_page))
        .route(
            "/console/queues/{queue}/redrive-all",
            get(queues::confirm_redrive_all).post(queues::redrive_all),
        )
        .route(
            "/console/queues/{queue}/messages/{message}/{action}",
            get(queues::confirm_message).post(queues::act_on_message),
        )
        .route("/console/orders", get(orders::orders_page))
        .route("/console/orders/{order_id}", get(orders::order_page))
        .route("/console/images", get(orders::images_page))
        .route("/console/blobs/{*key}", get(orders::blob))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/", get(|| async { Redirect::to("/console/") }))
        .with_state(console)
        .layer(axum::middleware::from_fn(same_origin_posts));
    let set =
        |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    pages
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "same-origin"))
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
}

/// A POST must say it comes from a page of this server: its `Origin` is
/// `http://` and the `Host` it was sent to (the server has already checked
/// that the Host is its own address). Browsers send `Origin` on every POST.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let headers = req.headers();
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same = matches!((host, origin), (Some(h), Some(o)) if o.strip_prefix("http://").is_some_and(|rest| rest.eq_ignore_ascii_case(h)));
        if !same {
            return pages::PageError::forbidden(
                "this action must be sent from a console page of this server",
            )
            .into_response();
        }
    }
    next.run(req).await
}
