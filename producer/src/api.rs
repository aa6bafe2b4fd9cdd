//! The orders/images HTTP API. Writes are commands: they validate, publish
//! an event and answer 202; the consumers do the rest. An `Idempotency-Key`
//! header (a UUID) makes a retry safe: see [`crate::idempotency`].
//!
//! What holds wherever the router runs (locally and behind API Gateway):
//! JSON commands take `application/json` only, uploads only the image types
//! the image processor reads, each route has its own body limit, answers
//! carry `nosniff` and a CSP that lets nothing run, and a 5xx names no
//! internal detail (it is logged instead). What only a local server needs
//! (Host and Origin checks, timeouts, concurrency) is in [`crate::serve`].

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_shared::events::{
    EventType, ImageUploaded, LineItem, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped,
    OrderStatus,
};
use switchyard_shared::items::{item_type, order_key, ImageRecord, Order, TableRecord};
use switchyard_shared::ports::BlobError;
use switchyard_shared::{BlobKey, Envelope, TraceContext};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;
use uuid::Uuid;

use crate::http::{body_read_error, is_json};
pub use crate::http::{ApiError, ApiState, DEFAULT_MAX_UPLOAD_BYTES};
use crate::idempotency::{self, CommandId};

/// The API's name as a hop of a trace.
pub const HOP: &str = "orders-api";

/// The body limit of the JSON commands: far above any real order, far below an event's 256 KB.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// What blobs and answers may do in a browser: nothing (no scripts, no
/// subresources, not framed; `sandbox` also gives them an opaque origin).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

pub fn router(state: ApiState) -> Router {
    let upload_limit = state.max_upload_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/orders", command(place_order, MAX_JSON_BYTES, &state))
        .route("/orders/{order_id}", get(read_order))
        .route(
            "/orders/{order_id}/pay",
            command(pay_order, MAX_JSON_BYTES, &state),
        )
        .route(
            "/orders/{order_id}/ship",
            command(ship_order, MAX_JSON_BYTES, &state),
        )
        .route(
            "/orders/{order_id}/cancel",
            command(cancel_order, MAX_JSON_BYTES, &state),
        )
        .route(
            "/orders/{order_id}/images",
            command(upload_image, upload_limit, &state),
        )
        .route("/blobs/{*key}", get(read_blob))
        // Each command route has its own limit (below).
        .layer(DefaultBodyLimit::disable())
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .with_state(state)
}

/// A command route: a POST whose body is refused past `limit` (by its
/// `Content-Length` before it is read, else while reading), with its
/// `Idempotency-Key` handled.
fn command<H, T>(handler: H, limit: usize, state: &ApiState) -> MethodRouter<ApiState>
where
    H: Handler<T, ApiState>,
    T: 'static,
{
    post(handler)
        .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer::<_, std::convert::Infallible>(RequestBodyLimitLayer::new(limit))
}

/// A request body, read whole; a body over the route's limit is a 413, one
/// that took too long to arrive a 408.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map(RawBody)
            .map_err(|e| body_read_error(&e))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body, naming the path of the first bad field. Only
/// `application/json` is taken: a browser sends no other type cross-site
/// without a CORS preflight, which this API never grants.
fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::with_field(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            "send the body as application/json",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing field only in its message: `missing field `x``.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "body".to_owned(),
            (p, Some(name)) => format!("{p}.{name}"),
            (p, None) => p.to_owned(),
        };
        ApiError::bad_request(&field, message)
    })
}

fn check_id(field: &str, id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            field,
            "use 1 to 64 letters, digits, `-` or `_`",
        ))
    }
}

fn non_empty(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        Err(ApiError::bad_request(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// What a command carries besides its body: the id its `Idempotency-Key`
/// gave it (if sent with one) and the trace it continues.
pub struct Command {
    id: Option<Uuid>,
    trace: Option<TraceContext>,
}

impl<S: Send + Sync> FromRequestParts<S> for Command {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Command {
            id: parts.extensions.get::<CommandId>().map(|c| c.0),
            trace: incoming_trace(&parts.headers),
        })
    }
}

/// The trace a request continues: its W3C `traceparent`, else X-Ray's
/// `X-Amzn-Trace-Id` (API Gateway and function URLs set it). One that does
/// not parse is ignored and a new trace starts, as the W3C spec asks.
pub fn incoming_trace(headers: &HeaderMap) -> Option<TraceContext> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = text("traceparent") {
        match TraceContext::parse(value) {
            Ok(trace) => return Some(trace),
            Err(e) => tracing::debug!(error = %e, "traceparent ignored"),
        }
    }
    text("x-amzn-trace-id").and_then(TraceContext::from_xray)
}

/// The id of what a command creates: its command id, so a retry creates the same, or a new one.
fn new_id(command: &Command) -> String {
    command.id.unwrap_or_else(Uuid::now_v7).to_string()
}

/// Publishes the command's event: its id the command id (if any), its trace
/// this hop's span, a child of the caller's (or the root of a new trace).
async fn publish<E: EventType>(
    state: &ApiState,
    command: &Command,
    event: E,
) -> ApiResult<Envelope> {
    let mut envelope = event.into_envelope();
    if let Some(id) = command.id {
        envelope = envelope.with_id(id);
    }
    let (span, parent) = match command.trace {
        Some(parent) => (parent.child(HOP, envelope.id.as_bytes()), Some(parent)),
        None => (TraceContext::root(envelope.id), None),
    };
    let envelope = envelope.traced(span);
    let hop = tracing::info_span!(
        "command",
        consumer = HOP,
        event_id = %envelope.id,
        detail_type = %envelope.detail_type,
        trace_id = %span.trace_id_hex(),
        span_id = %span.span_id_hex(),
        parent_id = parent.map(|p| p.span_id_hex()),
    );
    let report = state
        .publisher
        .publish(std::slice::from_ref(&envelope))
        .instrument(hop.clone())
        .await
        .map_err(|e| match e {
            switchyard_shared::ports::PublishError::Invalid(e) => {
                ApiError::bad_request("body", e.to_string())
            }
            other => ApiError::unavailable(other),
        })?;
    report.into_result().map_err(ApiError::unavailable)?;
    hop.in_scope(|| tracing::debug!("published"));
    Ok(envelope)
}

fn accepted(fields: Value, envelope: &Envelope) -> Response {
    let mut body = fields;
    body["event_id"] = Value::String(envelope.id.to_string());
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn health(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    state
        .table
        .get(&order_key("health-check"))
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "status": "ok" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrder {
    #[serde(default)]
    order_id: Option<String>,
    customer_id: String,
    items: Vec<LineItem>,
    currency: String,
}

async fn place_order(
    State(state): State<ApiState>,
    command: Command,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let req: PlaceOrder = parse_body(&headers, &body)?;
    let order_id = req.order_id.unwrap_or_else(|| new_id(&command));
    check_id("order_id", &order_id)?;
    non_empty("customer_id", &req.customer_id)?;
    if req.items.is_empty() {
        return Err(ApiError::bad_request(
            "items",
            "an order needs at least one item",
        ));
    }
    let mut total: u64 = 0;
    for (i, item) in req.items.iter().enumerate() {
        non_empty(&format!("items[{i}].sku"), &item.sku)?;
        if item.quantity == 0 {
            return Err(ApiError::bad_request(
                &format!("items[{i}].quantity"),
                "must be at least 1",
            ));
        }
        total = item
            .unit_price_cents
            .checked_mul(u64::from(item.quantity))
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| {
                ApiError::bad_request(&format!("items[{i}]"), "order total overflows")
            })?;
    }
    if req.currency.len() != 3 || !req.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::bad_request(
            "currency",
            "use an ISO 4217 code such as EUR",
        ));
    }
    let event = OrderPlaced {
        order_id: order_id.clone(),
        customer_id: req.customer_id,
        items: req.items,
        total_cents: total,
        currency: req.currency,
    };
    let envelope = publish(&state, &command, event).await?;
    Ok(accepted(
        json!({ "order_id": order_id, "total_cents": total }),
        &envelope,
    ))
}

/// Refuses, early and clearly, a command the order's current state can never accept.
/// (The order processor checks again: this is only the fast answer.)
async fn check_not_terminal(state: &ApiState, order_id: &str, command: &str) -> ApiResult<()> {
    let current = state
        .table
        .get(&order_key(order_id))
        .await
        .map_err(ApiError::unavailable)?;
    if let Some(order) = current
        .map(|i| Order::from_item(&i))
        .transpose()
        .map_err(|e| ApiError::internal("reading an order", e))?
    {
        let refused = match command {
            "pay" => order.paid,
            _ => matches!(order.status, OrderStatus::Shipped | OrderStatus::Cancelled),
        };
        if refused {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "cannot {command} order {order_id}: it is {}{}",
                    order.status.as_str(),
                    if order.paid { " and paid" } else { "" }
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayOrder {
    payment_id: String,
    amount_cents: u64,
}

async fn pay_order(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
    command: Command,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: PayOrder = parse_body(&headers, &body)?;
    non_empty("payment_id", &req.payment_id)?;
    check_not_terminal(&state, &order_id, "pay").await?;
    let event = OrderPaid {
        order_id: order_id.clone(),
        payment_id: req.payment_id,
        amount_cents: req.amount_cents,
    };
    let envelope = publish(&state, &command, event).await?;
    Ok(accepted(json!({ "order_id": order_id }), &envelope))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipOrder {
    carrier: String,
    tracking_number: String,
}

async fn ship_order(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
    command: Command,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: ShipOrder = parse_body(&headers, &body)?;
    non_empty("carrier", &req.carrier)?;
    non_empty("tracking_number", &req.tracking_number)?;
    check_not_terminal(&state, &order_id, "ship").await?;
    let event = OrderShipped {
        order_id: order_id.clone(),
        carrier: req.carrier,
        tracking_number: req.tracking_number,
    };
    let envelope = publish(&state, &command, event).await?;
    Ok(accepted(json!({ "order_id": order_id }), &envelope))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelOrder {
    reason: String,
}

async fn cancel_order(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
    command: Command,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: CancelOrder = parse_body(&headers, &body)?;
    non_empty("reason", &req.reason)?;
    check_not_terminal(&state, &order_id, "cancel").await?;
    let event = OrderCancelled {
        order_id: order_id.clone(),
        reason: req.reason,
    };
    let envelope = publish(&state, &command, event).await?;
    Ok(accepted(json!({ "order_id": order_id }), &envelope))
}

/// The image types the image processor reads, by the magic bytes it sniffs
/// (`switchyard_imaging::sniff`; a test in the root crate keeps them equal).
/// The declared type must match the bytes, so a blob is served as what it is.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some("image/png"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        _ => None,
    }
}

/// The image types uploads take.
pub const UPLOAD_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

async fn upload_image(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
    command: Command,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let Some(&content_type) = UPLOAD_TYPES.iter().find(|t| **t == declared) else {
        return Err(ApiError::with_field(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            format!("send the raw image as one of {}", UPLOAD_TYPES.join(", ")),
        ));
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("body", "the image is empty"));
    }
    if image_type(&body) != Some(content_type) {
        return Err(ApiError::with_field(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            format!("the body is not an {content_type} image"),
        ));
    }
    let image_id = new_id(&command);
    let key = BlobKey::new(format!("uploads/{order_id}/{image_id}"))
        .map_err(|e| ApiError::bad_request("order_id", e.to_string()))?;
    let size = body.len() as u64;
    state
        .blobs
        .put(&key, body, content_type)
        .await
        .map_err(ApiError::unavailable)?;
    let event = ImageUploaded {
        image_id: image_id.clone(),
        order_id: order_id.clone(),
        key: key.to_string(),
        content_type: content_type.to_owned(),
        size_bytes: size,
    };
    let envelope = publish(&state, &command, event).await?;
    Ok(accepted(
        json!({ "order_id": order_id, "image_id": image_id, "key": key.to_string() }),
        &envelope,
    ))
}

async fn read_order(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_id("order_id", &order_id)?;
    let unavailable = ApiError::unavailable;
    let items = state
        .table
        .query(&order_key(&order_id).pk, None)
        .await
        .map_err(unavailable)?;
    let mut order = None;
    let mut images = Vec::new();
    for item in &items {
        match item_type(item) {
            Some(Order::TYPE) => order = Some(Order::from_item(item).map_err(unavailable)?),
            Some(ImageRecord::TYPE) => {
                images.push(ImageRecord::from_item(item).map_err(unavailable)?)
            }
            _ => {}
        }
    }
    let order = order.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("no order {order_id} (yet)"))
    })?;
    let images: Vec<Value> = images
        .into_iter()
        .map(|img| {
            let variants: Vec<Value> = img
                .variants
                .iter()
                .map(|v| json!({ "name": v.name, "width": v.width, "height": v.height, "format": v.format, "bytes": v.bytes, "url": format!("/blobs/{}", v.key) }))
                .collect();
            json!({ "image_id": img.image_id, "status": img.status, "reject_code": img.reject_code, "reject_reason": img.reject_reason, "variants": variants })
        })
        .collect();
    Ok(Json(json!({
        "order_id": order.order_id, "status": order.status, "version": order.version, "paid": order.paid,
        "customer_id": order.customer_id, "items": order.items, "total_cents": order.total_cents,
        "currency": order.currency, "images": images,
    })))
}

async fn read_blob(State(state): State<ApiState>, Path(key): Path<String>) -> ApiResult<Response> {
    let key = BlobKey::new(key).map_err(|e| ApiError::bad_request("key", e.to_string()))?;
    match state.blobs.get(&key).await {
        Ok(blob) => Ok(([(header::CONTENT_TYPE, blob.content_type)], blob.bytes).into_response()),
        Err(BlobError::NotFound(k)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no blob at {k}"),
        )),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}
