//! What the API's handlers and its idempotency middleware share: the
//! state they run on, and the error answer with the checks that produce one.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_shared::ports::{BlobStore, EventPublisher, Table};

/// The image processor's default size limit (`switchyard_imaging::Limits`;
/// a test in the root crate keeps the two equal): a larger upload is refused
/// before it is read, rather than stored and then rejected.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;
#[derive(Clone)]
pub struct ApiState {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub publisher: Arc<dyn EventPublisher>,
    /// The largest upload taken: set it to the image processor's `max_bytes`.
    pub max_upload_bytes: usize,
}

impl ApiState {
    pub fn new(
        table: Arc<dyn Table>,
        blobs: Arc<dyn BlobStore>,
        publisher: Arc<dyn EventPublisher>,
    ) -> Self {
        ApiState {
            table,
            blobs,
            publisher,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// Why a body could not be read, as an answer.
pub(crate) fn body_read_error(e: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than this route takes",
            );
        }
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long to arrive",
            );
        }
        source = err.source();
    }
    ApiError::bad_request("body", "the body could not be read")
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
pub(crate) fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// An error answer: a status and a JSON body naming the field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::with_field(StatusCode::BAD_REQUEST, field, message)
    }
    pub(crate) fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::with_field(StatusCode::UNPROCESSABLE_ENTITY, field, message)
    }
    pub(crate) fn with_field(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
    /// A backend failed (worth a retry). Its detail may name files or
    /// resources, so it goes to the log, not to the client.
    pub(crate) fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "backend failed; answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the backend is unavailable; retry later",
        )
    }
    /// Something that should not happen; the detail goes to the log only.
    pub(crate) fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what} failed; answering 500");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
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
