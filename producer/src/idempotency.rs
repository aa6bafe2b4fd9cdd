//! `Idempotency-Key` for the API's commands, in one middleware.
//!
//! A key is scoped to its command and target: the request path (which names
//! the command and the order) and, for a creation, the `order_id` its JSON
//! body names. Each scope is remembered in the table (so it works on every
//! backend), keyed by the scope's hash, with the hash of the first request
//! and the command's id: the event id, and the id of what the command
//! creates when the client named none (the order, the image).
//!
//! - first use: a pending record is written before anything is published
//!   (a new UUID v7 as the command id); a 2xx answer then completes it;
//! - a retry with the same body gets the first answer back
//!   (`Idempotent-Replayed: true`), or, if the first never finished, runs
//!   again with the same command id: the same event, which the consumers
//!   ignore if the first run published it;
//! - the same key and scope with a different body answers 422 naming
//!   `Idempotency-Key`, and publishes nothing;
//! - a 4xx answer (bad input, a refused command) forgets the key: nothing
//!   was published, so the client may fix the request and reuse it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard_shared::ports::{Condition, Item, Key, TableError};
use uuid::Uuid;

use crate::http::{body_read_error, is_json, ApiError, ApiState};

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that repeats the first answer to a key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key is remembered (the `expires_at` attribute, for a TTL on the table).
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);
/// The largest answer remembered; command answers are a few fields.
const MAX_REMEMBERED_ANSWER: usize = 64 * 1024;

/// The id of a command sent with an `Idempotency-Key`, as a request extension:
/// the event id, and the id of what the command creates if the client named none.
/// The first request under a key and scope picks it; its retries reuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandId(pub Uuid);

/// `version` of a record whose command has not answered yet, and of one that has.
const PENDING: u64 = 1;
const DONE: u64 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The command id of the first request.
    event_id: Uuid,
    /// The command, as its route (`POST /orders/{order_id}/pay`), for the conflict message.
    command: String,
    /// SHA-256 of the content type and body of the first request.
    request_hash: String,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// The first answer's JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    expires_at: u64,
}

impl Record {
    const TYPE: &'static str = "idempotency";

    fn to_item(&self, key: &Key) -> Item {
        let Value::Object(mut item) = serde_json::to_value(self).expect("records serialise") else {
            unreachable!("a struct")
        };
        let key = key.clone();
        item.insert("pk".into(), Value::String(key.pk));
        item.insert("sk".into(), Value::String(key.sk));
        item.insert("type".into(), Value::String(Self::TYPE.into()));
        item
    }

    fn from_item(item: Item) -> Result<Self, ApiError> {
        serde_json::from_value(Value::Object(item))
            .map_err(|e| ApiError::internal("reading an idempotency record", e))
    }
}

/// Where a key in a scope is remembered: SHA-256 over the key and the scope.
pub fn record_key(key: &str, method: &str, path: &str, body_target: Option<&str>) -> Key {
    let mut h = Sha256::new();
    for part in [
        "switchyard/idempotency/v1",
        key,
        method,
        path,
        body_target.unwrap_or(""),
    ] {
        // Framed, so moving a boundary between parts changes the hash.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Key::new(
        format!("IDEMPOTENCY#{}", hex(&h.finalize()[..16])),
        "IDEMPOTENCY",
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn request_hash(content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update((content_type.len() as u64).to_be_bytes());
    h.update(content_type.as_bytes());
    h.update(body);
    hex(&h.finalize())
}

/// The key of a request, if it has one; a UUID, as the README asks.
fn key_of(req: &Request) -> Result<Option<Uuid>, ApiError> {
    match req.headers().get(HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("Idempotency-Key", "must be a UUID")),
    }
}

fn expires_at() -> u64 {
    (SystemTime::now() + KEEP_FOR)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The middleware: see the module documentation.
pub async fn middleware(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    match run(&state, req, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(state: &ApiState, req: Request, next: Next) -> Result<Response, Response> {
    let Some(key) = key_of(&req).map_err(IntoResponse::into_response)? else {
        return Ok(next.run(req).await);
    };
    let (mut parts, body) = req.into_parts();
    // The route's body limit wraps the body; reading past it is a 413.
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| body_read_error(&e).into_response())?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // A creation's target is the id its body names (`POST /orders` with `order_id`).
    let body_target = is_json(&content_type)
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .and_then(|v| v.get("order_id")?.as_str().map(str::to_owned));
    let command = format!(
        "{} {}",
        parts.method,
        parts
            .extensions
            .get::<MatchedPath>()
            .map_or(parts.uri.path(), |p| p.as_str())
    );
    let record_key = record_key(
        &key.to_string(),
        parts.method.as_str(),
        parts.uri.path(),
        body_target.as_deref(),
    );
    let hash = request_hash(&content_type, &body);

    let table = &*state.table;
    let mut pending = Record {
        event_id: Uuid::now_v7(),
        command: command.clone(),
        request_hash: hash.clone(),
        version: PENDING,
        status: None,
        answer: None,
        expires_at: expires_at(),
    };
    let current = match table
        .put(pending.to_item(&record_key), Condition::Absent)
        .await
    {
        Ok(()) => None,
        Err(TableError::ConditionFailed {
            current: Some(item),
            ..
        }) => Some(Record::from_item(*item).map_err(IntoResponse::into_response)?),
        Err(TableError::ConditionFailed { current: None, .. }) => {
            match table.get(&record_key).await {
                Ok(Some(item)) => {
                    Some(Record::from_item(item).map_err(IntoResponse::into_response)?)
                }
                // Forgotten meanwhile (its command answered 4xx): run as new.
                Ok(None) => None,
                Err(e) => return Err(ApiError::unavailable(e).into_response()),
            }
        }
        Err(e) => return Err(ApiError::unavailable(e).into_response()),
    };
    if let Some(first) = current {
        if first.request_hash != hash {
            return Err(ApiError::unprocessable(
                "Idempotency-Key",
                format!(
                    "this key was already used for {} with a different request; use a new key for a new command",
                    first.command
                ),
            )
            .into_response());
        }
        if let (DONE, Some(status), Some(answer)) = (first.version, first.status, first.answer) {
            return Ok(replay(status, answer));
        }
        // Same request, first run unfinished (in flight, or cut short): run again to the same ids.
        pending.event_id = first.event_id;
    }

    parts.extensions.insert(CommandId(pending.event_id));
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    if status.is_success() {
        let (parts, body) = response.into_parts();
        let answer = match to_bytes(body, MAX_REMEMBERED_ANSWER).await {
            Ok(bytes) => bytes,
            Err(e) => return Err(ApiError::internal("buffering an answer", e).into_response()),
        };
        let done = Record {
            version: DONE,
            status: Some(status.as_u16()),
            answer: Some(String::from_utf8_lossy(&answer).into_owned()),
            ..pending
        };
        if let Err(e) = table
            .put(done.to_item(&record_key), Condition::Always)
            .await
        {
            // The command went out; a retry runs it again to the same ids.
            tracing::warn!(error = %e, "could not remember an idempotency key's answer");
        }
        Ok(Response::from_parts(parts, Body::from(answer)))
    } else {
        if status.is_client_error() {
            // Nothing was published: forget the key unless a twin request completed it.
            match table
                .delete(&record_key, Condition::VersionIs(PENDING))
                .await
            {
                Ok(()) | Err(TableError::ConditionFailed { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "could not forget an idempotency key"),
            }
        }
        Ok(response)
    }
}

fn replay(status: u16, answer: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static(REPLAYED_HEADER),
                HeaderValue::from_static("true"),
            ),
        ],
        answer,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_per_key_and_scope() {
        let at = |k, p, t| record_key(k, "POST", p, t);
        let a = at("k", "/orders", Some("A"));
        assert_eq!(a, at("k", "/orders", Some("A")));
        assert_ne!(a, at("k", "/orders", Some("B")));
        assert_ne!(a, at("k2", "/orders", Some("A")));
        assert_ne!(a, record_key("k", "PUT", "/orders", Some("A")));
        assert_ne!(
            at("k", "/orders/A/pay", None),
            at("k", "/orders/A/ship", None)
        );
        // Framed: moving a boundary between parts changes the record.
        assert_ne!(
            at("k", "/orders/A", Some("B")),
            at("k", "/orders/", Some("AB"))
        );
        assert!(a.pk.starts_with("IDEMPOTENCY#") && a.pk.len() == "IDEMPOTENCY#".len() + 32);
    }
}
