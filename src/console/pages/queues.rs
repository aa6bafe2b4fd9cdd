//! Queues: every queue and dead-letter queue with its counts; a queue's
//! messages with body, receive count and failure reason; and, for a DLQ,
//! redrive and delete, each confirmed on a page of its own and done by a
//! POST that carries the console's token.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::{clock, human_duration, page, seg, PageError, PageResult};
use crate::console::state::Console;
use crate::system::dead_letter_queues;

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    pub done: String,
}

pub async fn queues_page(State(console): State<Console>) -> PageResult {
    let queues = console.queues()?;
    page(
        "Queues",
        "queues",
        html! {
            table.queues {
                thead { tr { th { "queue" } th { "kind" } th { "visible" } th { "in flight" } th { "delayed" } th { "oldest" } } }
                tbody {
                    @for q in &queues {
                        tr data-queue=(q.stats.name) {
                            td { a href=(format!("/console/queues/{}", seg(&q.stats.name))) { (q.stats.name) } }
                            td { @if is_dead_letter(&console, &q.stats.name) { "dead letters" } @else { "queue" } }
                            td { (q.stats.visible) } td { (q.stats.in_flight) } td { (q.stats.delayed) }
                            td { (q.oldest.map_or("—".to_owned(), human_duration)) }
                        }
                    }
                }
            }
        },
    )
}

fn is_dead_letter(console: &Console, queue: &str) -> bool {
    dead_letter_queues(&console.topology)
        .iter()
        .any(|d| d == queue)
}

fn known_queue(console: &Console, queue: &str) -> Result<(), PageError> {
    let queues = console.store.queue_stats()?;
    if queues.iter().any(|q| q.name == queue) {
        Ok(())
    } else {
        Err(PageError::not_found(format!("no queue named {queue:?}")))
    }
}

/// Messages shown on a queue's page: each shows its body pretty-printed, and
/// an envelope with its trace context is about 1.5 KB of page, so 50 keep a
/// page of dead letters under 150 KB.
pub const MESSAGES_SHOWN: usize = 50;

pub async fn queue_page(
    State(console): State<Console>,
    Path(queue): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    known_queue(&console, &queue)?;
    let messages = console.store.list_messages(&queue, MESSAGES_SHOWN)?;
    let dead = is_dead_letter(&console, &queue);
    page(
        &format!("Queue {queue}"),
        "queues",
        html! {
            @if !done.done.is_empty() { p.notice role="status" { (done.done) } }
            p.hint { (messages.len()) " message(s) shown (at most " (MESSAGES_SHOWN) ", oldest first)." }
            @if dead && !messages.is_empty() {
                p { a.button href=(format!("/console/queues/{}/redrive-all", seg(&queue))) { "Redrive all…" } }
            }
            @for m in &messages {
                article.message data-message-id=(m.message_id) {
                    dl {
                        dt { "message" } dd.mono { (m.message_id) }
                        dt { "sent" } dd { (clock(m.sent_at_ms)) }
                        dt { "receive count" } dd data-field="receive-count" { (m.receive_count) }
                        dt { "state" } dd { @if m.in_flight { "in flight" } @else { "waiting" } }
                        @if let Some(s) = &m.source_queue { dt { "from" } dd { (s) } }
                        dt { "failure reason" } dd.reason data-field="reason" { (m.last_failure.as_deref().unwrap_or("(none recorded)")) }
                    }
                    pre.body { (pretty(&m.body)) }
                    @if dead {
                        p.actions {
                            @if m.source_queue.is_some() {
                                a.button data-action="redrive" href=(format!("/console/queues/{}/messages/{}/redrive", seg(&queue), seg(&m.message_id))) { "Redrive…" }
                            }
                            " "
                            a.button.danger data-action="delete" href=(format!("/console/queues/{}/messages/{}/delete", seg(&queue), seg(&m.message_id))) { "Delete…" }
                        }
                    }
                }
            }
        },
    )
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Redrive,
    Delete,
}

impl Action {
    fn parse(s: &str) -> Result<Self, PageError> {
        match s {
            "redrive" => Ok(Action::Redrive),
            "delete" => Ok(Action::Delete),
            _ => Err(PageError::not_found("no such action")),
        }
    }
}

/// The confirmation page of an action on one message (`message` = None: every message).
fn confirm(console: &Console, queue: &str, message: Option<&str>, action: Action) -> PageResult {
    if !is_dead_letter(console, queue) {
        return Err(PageError::bad_request(format!(
            "{queue} is not a dead-letter queue"
        )));
    }
    let (verb, what) = match (action, message) {
        (Action::Redrive, Some(m)) => (
            "Redrive",
            format!("message {m} back to the queue it came from"),
        ),
        (Action::Delete, Some(m)) => ("Delete", format!("message {m} for good")),
        (Action::Redrive, None) => (
            "Redrive all",
            "every message back to the queue it came from".to_owned(),
        ),
        (Action::Delete, None) => return Err(PageError::not_found("no such action")),
    };
    let action_url = match message {
        Some(m) => format!(
            "/console/queues/{}/messages/{}/{}",
            seg(queue),
            seg(m),
            if action == Action::Redrive {
                "redrive"
            } else {
                "delete"
            }
        ),
        None => format!("/console/queues/{}/redrive-all", seg(queue)),
    };
    page(
        &format!("{verb}?"),
        "queues",
        html! {
            p { (verb) " " (what) " (from " (queue) ")?" }
            form method="post" action=(action_url) {
                input type="hidden" name="token" value=(console.token);
                button type="submit" #confirm { "Yes, " (verb.to_lowercase()) }
                " "
                a href=(format!("/console/queues/{}", seg(queue))) { "Cancel" }
            }
        },
    )
}

pub async fn confirm_message(
    State(console): State<Console>,
    Path((queue, message, action)): Path<(String, String, String)>,
) -> PageResult {
    known_queue(&console, &queue)?;
    confirm(&console, &queue, Some(&message), Action::parse(&action)?)
}

pub async fn confirm_redrive_all(
    State(console): State<Console>,
    Path(queue): Path<String>,
) -> PageResult {
    known_queue(&console, &queue)?;
    confirm(&console, &queue, None, Action::Redrive)
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    pub token: String,
}

/// An action may go ahead: the form carries the token, and `queue` is a dead-letter queue.
fn may_act(console: &Console, queue: &str, form: &TokenForm) -> Result<(), PageError> {
    console
        .check_token(&form.token)
        .map_err(PageError::forbidden)?;
    known_queue(console, queue)?;
    if !is_dead_letter(console, queue) {
        return Err(PageError::bad_request(format!(
            "{queue} is not a dead-letter queue"
        )));
    }
    Ok(())
}

/// Where to go after an action, saying what happened.
fn done(queue: &str, message: &str) -> Response {
    let url = format!("/console/queues/{}?done={}", seg(queue), seg(message));
    Redirect::to(&url).into_response()
}

pub async fn act_on_message(
    State(console): State<Console>,
    Path((queue, message, action)): Path<(String, String, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    may_act(&console, &queue, &form)?;
    match Action::parse(&action)? {
        Action::Redrive => {
            let source = console
                .store
                .list_messages(&queue, usize::MAX)?
                .into_iter()
                .find(|m| m.message_id == message)
                .and_then(|m| m.source_queue);
            let moved = console.store.redrive_message(&queue, &message)?;
            Ok(match (moved, source) {
                (true, Some(source)) => done(
                    &source,
                    &format!("Moved message {message} from {queue} back to {source}."),
                ),
                _ => done(&queue, &format!("Message {message} was not moved: it is no longer in {queue}, or came from no queue.")),
            })
        }
        Action::Delete => {
            let deleted = console.store.delete_message(&queue, &message)?;
            Ok(done(
                &queue,
                &if deleted {
                    format!("Deleted message {message} from {queue}.")
                } else {
                    format!("Message {message} was not in {queue} any more.")
                },
            ))
        }
    }
}

pub async fn redrive_all(
    State(console): State<Console>,
    Path(queue): Path<String>,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    may_act(&console, &queue, &form)?;
    let moved = console.store.redrive(&queue, usize::MAX)?;
    Ok(done(
        &queue,
        &format!("Moved {moved} message(s) from {queue} back to their source queue."),
    ))
}
