//! The flow: the topology drawn as lanes, left to right, one per
//! subscription (bus or topic → rule or filter policy → queue → consumer →
//! table), then the table's stream through each stream consumer back to the
//! bus. Everything is drawn from the topology, so a new consumer appears by
//! itself; each edge shows its total and rate, each queue its depth.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{html, Markup};
use router_rules::topology::{Subscription, TableAccess};

use super::{human_duration, page, seg, PageError, PageResult};
use crate::console::queue_admin::QueueView;
use crate::console::recorder::{edge, Counts};
use crate::console::state::Console;

pub async fn flow_page(State(console): State<Console>) -> PageResult {
    let body = flow_graph(&console).await?;
    page(
        "Flow",
        "flow",
        html! {
            @if console.recorder.is_some() {
                p.hint { "Live: counts since this server started, rates over the last seconds. Refreshes every 2 s." }
            } @else {
                p.hint { "Queue depths are SQS's, refreshed every 2 s. " (super::NO_RECORDER) }
            }
            div #flow data-refresh="/console/flow/graph" { (body) }
        },
    )
}

/// The graph alone (what the page refreshes).
pub async fn flow_fragment(State(console): State<Console>) -> PageResult {
    Ok(axum::response::Html(
        flow_graph(&console).await?.into_string(),
    ))
}

/// The edges' totals and rates; None without a recorder (shown as "—").
struct Figures(Option<(Counts, BTreeMap<String, f64>)>);

impl Figures {
    /// An edge label: its total and rate, findable by its name.
    fn edge(&self, name: &str, label: &str) -> Markup {
        let (count, rate) = match &self.0 {
            Some((counts, rates)) => (
                counts.get(name).copied().unwrap_or(0).to_string(),
                format!("{:.1}/s", rates.get(name).copied().unwrap_or(0.0)),
            ),
            None => ("—".to_owned(), String::new()),
        };
        html! {
            div.edge {
                span.label { (label) }
                span.count data-edge=(name) { (count) }
                span.rate { (rate) }
            }
        }
    }
}

fn queue_box(q: Option<&QueueView>, dlq: Option<&QueueView>, name: &str) -> Markup {
    let depth = |q: Option<&QueueView>| q.map_or(0, |q| q.visible + q.delayed);
    html! {
        a.node.queue href=(format!("/console/queues/{}", seg(name))) data-queue=(name) {
            strong { "queue " (name) }
            dl {
                dt { "depth" } dd data-stat="depth" { (depth(q)) }
                dt { "in flight" } dd data-stat="in-flight" { (q.map_or(0, |q| q.in_flight)) }
                dt { "oldest" } dd data-stat="oldest" { (q.and_then(|q| q.oldest).map_or("—".to_owned(), human_duration)) }
                dt { "DLQ" } dd data-stat="dlq" { (dlq.map_or(0, QueueView::total)) }
            }
        }
    }
}

async fn flow_graph(console: &Console) -> Result<Markup, PageError> {
    let f = Figures(console.counts_and_rates());
    let queues: BTreeMap<String, QueueView> = console
        .queue_views()
        .await
        .map_err(PageError::admin)?
        .into_iter()
        .map(|q| (q.name.clone(), q))
        .collect();
    let t = &*console.topology;
    Ok(html! {
        div.flow {
            @for c in &t.consumers {
                @for sub in &c.subscriptions {
                    @let (source, via) = match sub {
                        Subscription::Bus(b) => (format!("bus {}", b.bus), format!("rule {}", b.rule)),
                        Subscription::Topic(s) => (format!("topic {}", s.topic), format!("filter policy ({})", s.filter_policy_scope.as_str())),
                    };
                    div.lane data-consumer=(c.name) {
                        div.node.source { strong { (source) } (f.edge(&edge::published(&source), "published")) }
                        div.arrow { (via) (f.edge(&edge::routed(&c.queue_name()), "matched")) }
                        (queue_box(queues.get(&c.queue_name()), queues.get(&c.dlq_name()), &c.queue_name()))
                        div.arrow { "batch of " (c.queue.batch_size) }
                        div.node.consumer {
                            strong { "consumer " (c.name) }
                            (f.edge(&edge::succeeded(&c.name), "succeeded"))
                            (f.edge(&edge::failed(&c.name), "failed (retried)"))
                            (f.edge(&edge::dead_lettered(&c.name), "dead-lettered"))
                        }
                        div.arrow { @if c.permissions.table == Some(TableAccess::ReadWrite) { "writes" } @else { "reads" } }
                        div.node.table { strong { "table " (t.table.name) } }
                    }
                }
            }
            @for s in &t.stream_consumers {
                div.lane data-consumer=(s.name) {
                    div.node.table { strong { "table " (t.table.name) } (f.edge(edge::TABLE_WRITES, "writes")) }
                    div.arrow { "change stream" }
                    div.node.stream { strong { "stream" } span { "NEW_AND_OLD_IMAGES" } }
                    div.arrow { "batch of " (s.batch_size) }
                    div.node.consumer {
                        strong { "stream consumer " (s.name) }
                        a href=(format!("/console/queues/{}", seg(&s.on_failure_queue()))) {
                            "on-failure: " (queues.get(&s.on_failure_queue()).map_or(0, |q| q.visible))
                        }
                    }
                    div.arrow { (f.edge(edge::DERIVED, "derived events")) }
                    div.node.source { strong { @for b in &t.buses { "bus " (b.name) " " } } }
                }
            }
        }
    })
}
