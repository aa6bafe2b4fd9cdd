//! Events: the recent events, a live tail (server-sent events), a filter
//! box that takes an EventBridge pattern (matched by the rule engine), and
//! an event's lineage: every hop it and the events it caused took.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use maud::{html, Markup};
use router_rules::BusMatcher;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{clock, page, recorder, seg, PageError, PageResult};
use crate::console::recorder::{EventEntry, Hop, HopKind, Outcome};
use crate::console::state::Console;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub pattern: String,
}

/// A compiled filter; `None` matches everything.
struct EventFilter(Option<BusMatcher<()>>);

impl EventFilter {
    /// Parses a pattern with the rule engine; its error as the engine says it.
    fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.trim().is_empty() {
            return Ok(EventFilter(None));
        }
        let value: serde_json::Value =
            serde_json::from_str(pattern).map_err(|e| format!("not JSON: {e}"))?;
        BusMatcher::compile([((), &value)])
            .map(|m| EventFilter(Some(m)))
            .map_err(|e| e.to_string())
    }

    fn keeps(&self, e: &EventEntry) -> bool {
        self.0
            .as_ref()
            .is_none_or(|m| !m.matches(&e.json).is_empty())
    }
}

fn order_id(e: &EventEntry) -> &str {
    e.envelope.detail["order_id"].as_str().unwrap_or("")
}

fn event_row(e: &EventEntry) -> Markup {
    let id = e.envelope.id.to_string();
    html! {
        tr data-event-id=(id) {
            td { (clock(e.at_ms)) }
            td { a href=(format!("/console/events/{id}")) { (e.envelope.detail_type) } }
            td { (e.envelope.source) }
            td { (order_id(e)) }
            td { (e.destination) }
            td.mono { (id) }
        }
    }
}

pub async fn events_page(State(console): State<Console>, Query(q): Query<Filter>) -> PageResult {
    let filter = EventFilter::parse(&q.pattern);
    let rows = match &filter {
        Ok(f) => recorder(&console)?.recent(100, |e| f.keeps(e)),
        Err(_) => Vec::new(),
    };
    page(
        "Events",
        "events",
        html! {
            form.filter method="get" action="/console/events" {
                label for="pattern" { "EventBridge pattern" }
                textarea #pattern name="pattern" rows="3" placeholder=r#"{"detail-type": ["OrderPlaced"]}"# { (q.pattern) }
                button type="submit" { "Filter" }
            }
            @if let Err(e) = &filter {
                p.error #pattern-error role="alert" { "Invalid pattern: " (e) }
            } @else {
                p.hint #tail-status { "Live tail: connecting…" }
                table.events {
                    thead { tr { th { "time" } th { "detail-type" } th { "source" } th { "order" } th { "published to" } th { "id" } } }
                    tbody #tail data-stream=(format!("/console/events/stream?pattern={}", seg(&q.pattern))) {
                        @for e in &rows { (event_row(e)) }
                    }
                }
            }
        },
    )
}

/// The live tail: each new event that matches `pattern`, as JSON, for
/// console.js to add with `textContent` (never as markup).
pub async fn events_stream(
    State(console): State<Console>,
    Query(q): Query<Filter>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let filter = EventFilter::parse(&q.pattern).map_err(PageError::bad_request)?;
    let rx = recorder(&console)?.subscribe();
    let stream = futures::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if filter.keeps(&e) => {
                    let data = json!({
                        "id": e.envelope.id,
                        "time": clock(e.at_ms),
                        "detail_type": e.envelope.detail_type,
                        "source": e.envelope.source,
                        "order_id": order_id(&e),
                        "destination": e.destination,
                    });
                    let event = Event::default().event("event").data(data.to_string());
                    return Some((Ok(event), (rx, filter)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let event = Event::default().event("lagged").data(n.to_string());
                    return Some((Ok(event), (rx, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn hop_text(hop: &Hop) -> (String, String) {
    match &hop.kind {
        HopKind::Handled {
            consumer,
            receive_count,
            outcome,
        } => {
            let what = match outcome {
                Outcome::Succeeded => "succeeded".to_owned(),
                Outcome::Failed {
                    reason,
                    permanent,
                    dead_lettered,
                } => format!(
                    "failed{}{}: {reason}",
                    if *permanent { " (permanent)" } else { "" },
                    if *dead_lettered {
                        ", moved to the DLQ"
                    } else {
                        ", will retry"
                    }
                ),
                Outcome::Crashed => "crashed mid-batch".to_owned(),
            };
            (
                "handler".to_owned(),
                format!("{consumer}: {what} (receive {receive_count})"),
            )
        }
        HopKind::TableWrite {
            pk,
            sk,
            item_type,
            status,
        } => (
            "table change".to_owned(),
            format!(
                "{item_type} {pk} / {sk}{}",
                status
                    .as_deref()
                    .map(|s| format!(" → {s}"))
                    .unwrap_or_default()
            ),
        ),
        HopKind::PublishFailed { reason } => ("publish failed".to_owned(), reason.clone()),
    }
}

pub async fn lineage_page(State(console): State<Console>, Path(id): Path<String>) -> PageResult {
    let id: Uuid = id
        .parse()
        .map_err(|_| PageError::bad_request("an event id is a UUID"))?;
    let recorder = recorder(&console)?;
    let event = recorder.event(id).ok_or_else(|| {
        PageError::not_found("this event is not among the recent events the console keeps")
    })?;
    let lineage = recorder.lineage(event.envelope.correlation_id);
    let start = lineage.first().map_or(event.at_ms, |(e, _)| e.at_ms);
    let offset = |at: i64| format!("+{} ms", at - start);
    page(
        &format!("Lineage of {}", event.envelope.detail_type),
        "events",
        html! {
            p.hint { "Correlation " span.mono { (event.envelope.correlation_id) } ": every event it holds and every hop each took, in order." }
            details {
                summary { "This event's JSON" }
                pre.body { (serde_json::to_string_pretty(&event.envelope).unwrap_or_default()) }
            }
            ol.lineage {
                @for (e, hops) in &lineage {
                    li.lineage-event.selected[e.envelope.id == id] data-detail-type=(e.envelope.detail_type) data-event-id=(e.envelope.id.to_string()) {
                        h2 {
                            a href=(format!("/console/events/{}", e.envelope.id)) { (e.envelope.detail_type) }
                            " " span.mono { (e.envelope.id) }
                        }
                        @if let Some(cause) = e.envelope.causation_id {
                            p.hint { "caused by " a.mono href=(format!("/console/events/{cause}")) { (cause) } }
                        }
                        ul.hops {
                            li.hop data-hop="published" { span.when { (offset(e.at_ms)) } " " b { "published" } " to " (e.destination) " by " (e.envelope.source) }
                            @if e.routes.is_empty() {
                                li.hop data-hop="matched" { span.when { (offset(e.at_ms)) } " " b { "matched" } " no rule or filter policy" }
                            }
                            @for r in &e.routes {
                                li.hop data-hop="matched" {
                                    span.when { (offset(e.at_ms)) } " " b { "matched" } " " (r.via) " → "
                                    a href=(format!("/console/queues/{}", seg(&r.queue))) { "queue " (r.queue) }
                                }
                            }
                            @for h in hops {
                                @let (kind, text) = hop_text(h);
                                li.hop data-hop=(kind) { span.when { (offset(h.at_ms)) } " " b { (kind) } " " (text) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The events of one order, for its page.
pub fn history(entries: &[(Arc<EventEntry>, Vec<Hop>)]) -> Markup {
    html! {
        table.history {
            thead { tr { th { "time" } th { "event" } th { "what happened" } } }
            tbody {
                @for (e, hops) in entries {
                    tr {
                        td { (clock(e.at_ms)) }
                        td { a href=(format!("/console/events/{}", e.envelope.id)) { (e.envelope.detail_type) } }
                        td {
                            @if hops.is_empty() { "not handled yet" }
                            ul { @for h in hops { @let (kind, text) = hop_text(h); li { b { (kind) } " " (text) } } }
                        }
                    }
                }
            }
        }
    }
}
