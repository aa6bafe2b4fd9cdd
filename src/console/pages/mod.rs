//! The console's pages: server-rendered HTML (maud escapes every value it
//! interpolates; nothing here writes raw markup from data).

pub mod events;
pub mod flow;
pub mod orders;
pub mod queues;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::console::queue_admin::AdminError;
use crate::console::recorder::Recorder;
use crate::console::state::Console;

/// A page, or why it could not be made.
pub type PageResult = Result<Html<String>, PageError>;

#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn not_found(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    /// What this backend cannot show, and why.
    pub fn not_on_this_backend(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_IMPLEMENTED,
            message: message.into(),
        }
    }
    /// A queue port's error: a missing queue is a 404, what the backend cannot show a 501.
    pub fn admin(e: AdminError) -> Self {
        match e {
            AdminError::NoSuchQueue(_) => Self::not_found(e.to_string()),
            AdminError::NotShown(why) => Self::not_on_this_backend(why),
            AdminError::Queue(e) => e.into(),
        }
    }
}

/// Why events, lineage, counts and history are missing on `--backend aws`.
pub const NO_RECORDER: &str = "On --backend aws the consumers run as Lambda functions (or \
     pollers) that this console does not see, so events, lineage, counts and order histories \
     are not recorded here: see CloudWatch Logs and X-Ray for them. Queues, dead letters, \
     orders and images are read from SQS, DynamoDB and S3.";

/// The recorder, or the page that says why there is none.
pub fn recorder(console: &Console) -> Result<&Arc<Recorder>, PageError> {
    console
        .recorder
        .as_ref()
        .ok_or_else(|| PageError::not_on_this_backend(NO_RECORDER))
}

impl<E: Into<anyhow::Error>> From<E> for PageError {
    fn from(e: E) -> Self {
        let e = e.into();
        tracing::warn!(error = %format!("{e:#}"), "console page failed");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{e:#}"),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = layout(
            "Error",
            "",
            html! { p.error role="alert" { (self.status.as_u16()) " — " (self.message) } },
        );
        (self.status, Html(body.into_string())).into_response()
    }
}

const NAV: [(&str, &str, &str); 5] = [
    ("flow", "/console/", "Flow"),
    ("events", "/console/events", "Events"),
    ("queues", "/console/queues", "Queues"),
    ("orders", "/console/orders", "Orders"),
    ("images", "/console/images", "Images"),
];

/// The frame of every page: its own stylesheet and script, no inline code.
pub fn layout(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchyard console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "Switchyard" }
                    nav {
                        @for (id, href, label) in NAV {
                            a href=(href) class=[(id == active).then_some("active")] { (label) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn page(title: &str, active: &str, body: Markup) -> PageResult {
    Ok(Html(layout(title, active, body).into_string()))
}

/// `1.2 s`, `340 ms`, `3 min`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", d.as_secs_f64()),
        60_000..=3_599_999 => format!("{} min", ms / 60_000),
        _ => format!("{:.1} h", d.as_secs_f64() / 3600.0),
    }
}

/// A UTC timestamp in milliseconds, as `HH:MM:SS.mmm`.
pub fn clock(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// A path segment, percent-encoded (ids come from users).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A blob key as a console URL (each segment encoded, the slashes kept).
pub fn blob_url(key: &str) -> String {
    let parts: Vec<String> = key.split('/').map(seg).collect();
    format!("/console/blobs/{}", parts.join("/"))
}
