//! The orders/images HTTP API. Writes are commands: they validate, publish
//! an event and answer 202; the consumers do the rest. An `Idempotency-Key`
//! header (a UUID) becomes the event id, so a client retry is a duplicate
//! the consumers ignore.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_shared::events::{
    EventType, ImageUploaded, LineItem, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped,
    OrderStatus,
};
use switchyard_shared::items::{item_type, order_key, ImageRecord, Order, TableRecord};
use switchyard_shared::ports::{BlobError, BlobStore, EventPublisher, Table};
use switchyard_shared::{BlobKey, Envelope};
use uuid::Uuid;

/// The largest upload the API takes at all; the image processor applies its own, smaller, limits.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub publisher: Arc<dyn EventPublisher>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/orders", post(place_order))
        .route("/orders/{order_id}", get(read_order))
        .route("/orders/{order_id}/pay", post(pay_order))
        .route("/orders/{order_id}/ship", post(ship_order))
        .route("/orders/{order_id}/cancel", post(cancel_order))
        .route("/orders/{order_id}/images", post(upload_image))
        .route("/blobs/{*key}", get(read_blob))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

/// An error answer: a status and a JSON body naming the field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body, naming the path of the first bad field.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
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

/// The client's `Idempotency-Key`, if any, which becomes the event id.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<Uuid>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("Idempotency-Key", "must be a UUID")),
    }
}

async fn publish<E: EventType>(
    state: &ApiState,
    headers: &HeaderMap,
    event: E,
) -> ApiResult<Envelope> {
    let mut envelope = event.into_envelope();
    if let Some(id) = idempotency_key(headers)? {
        envelope.id = id;
        envelope.correlation_id = id;
    }
    let report = state
        .publisher
        .publish(std::slice::from_ref(&envelope))
        .await
        .map_err(|e| match e {
            switchyard_shared::ports::PublishError::Invalid(e) => {
                ApiError::bad_request("body", e.to_string())
            }
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        })?;
    report
        .into_result()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
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
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req: PlaceOrder = parse_body(&body)?;
    let order_id = req.order_id.unwrap_or_else(|| Uuid::now_v7().to_string());
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
    let envelope = publish(&state, &headers, event).await?;
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
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if let Some(order) = current
        .map(|i| Order::from_item(&i))
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: PayOrder = parse_body(&body)?;
    non_empty("payment_id", &req.payment_id)?;
    check_not_terminal(&state, &order_id, "pay").await?;
    let event = OrderPaid {
        order_id: order_id.clone(),
        payment_id: req.payment_id,
        amount_cents: req.amount_cents,
    };
    let envelope = publish(&state, &headers, event).await?;
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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: ShipOrder = parse_body(&body)?;
    non_empty("carrier", &req.carrier)?;
    non_empty("tracking_number", &req.tracking_number)?;
    check_not_terminal(&state, &order_id, "ship").await?;
    let event = OrderShipped {
        order_id: order_id.clone(),
        carrier: req.carrier,
        tracking_number: req.tracking_number,
    };
    let envelope = publish(&state, &headers, event).await?;
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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let req: CancelOrder = parse_body(&body)?;
    non_empty("reason", &req.reason)?;
    check_not_terminal(&state, &order_id, "cancel").await?;
    let event = OrderCancelled {
        order_id: order_id.clone(),
        reason: req.reason,
    };
    let envelope = publish(&state, &headers, event).await?;
    Ok(accepted(json!({ "order_id": order_id }), &envelope))
}

async fn upload_image(
    State(state): State<ApiState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check_id("order_id", &order_id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.starts_with("image/"))
        .ok_or_else(|| {
            ApiError::bad_request(
                "Content-Type",
                "send the raw image with an image/* content type",
            )
        })?
        .to_owned();
    if body.is_empty() {
        return Err(ApiError::bad_request("body", "the image is empty"));
    }
    let image_id = match idempotency_key(&headers)? {
        Some(key) => key.to_string(),
        None => Uuid::now_v7().to_string(),
    };
    let key = BlobKey::new(format!("uploads/{order_id}/{image_id}"))
        .map_err(|e| ApiError::bad_request("order_id", e.to_string()))?;
    let size = body.len() as u64;
    state
        .blobs
        .put(&key, body, &content_type)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let event = ImageUploaded {
        image_id: image_id.clone(),
        order_id: order_id.clone(),
        key: key.to_string(),
        content_type,
        size_bytes: size,
    };
    let envelope = publish(&state, &headers, event).await?;
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
    let unavailable = |e: switchyard_shared::ports::TableError| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    };
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
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}
