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
use crate::console::queue_admin::AdminError;
use crate::console::state::Console;
use crate::embedded::system::dead_letter_queues;

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    pub done: String,
}

pub async fn queues_page(State(console): State<Console>) -> PageResult {
    let queues = console.queue_views().await.map_err(PageError::admin)?;
    page(
        "Queues",
        "queues",
        html! {
            table.queues {
                thead { tr { th { "queue" } th { "kind" } th { "visible" } th { "in flight" } th { "delayed" } th { "oldest" } } }
                tbody {
                    @for q in &queues {
                        tr data-queue=(q.name) {
                            td { a href=(format!("/console/queues/{}", seg(&q.name))) { (q.name) } }
                            td { @if is_dead_letter(&console, &q.name) { "dead letters" } @else { "queue" } }
                            td { (q.visible) } td { (q.in_flight) } td { (q.delayed) }
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

/// A queue of the topology (each page checks before acting on user input).
fn known_queue(console: &Console, queue: &str) -> Result<(), PageError> {
    let polled = console
        .topology
        .consumers
        .iter()
        .any(|c| c.queue_name() == queue);
    if polled || is_dead_letter(console, queue) {
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
    let counts = console
        .queues
        .queue(&queue)
        .await
        .map_err(PageError::admin)?;
    let (messages, not_shown) = match console.queues.messages(&queue, MESSAGES_SHOWN).await {
        Ok(m) => (m, None),
        Err(AdminError::NotShown(why)) => (Vec::new(), Some(why)),
        Err(e) => return Err(PageError::admin(e)),
    };
    let reasons = console.queues.capabilities().failure_reasons;
    let dead = is_dead_letter(&console, &queue);
    page(
        &format!("Queue {queue}"),
        "queues",
        html! {
            @if !done.done.is_empty() { p.notice role="status" { (done.done) } }
            p.hint data-field="counts" { (counts.visible) " waiting, " (counts.in_flight) " in flight, " (counts.delayed) " delayed." }
            @if let Some(why) = not_shown {
                p.hint { (why) }
            } @else {
                p.hint { (messages.len()) " message(s) shown (at most " (MESSAGES_SHOWN) ", oldest first)." }
            }
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
                        dt { "failure reason" } dd.reason data-field="reason" {
                            @if reasons { (m.last_failure.as_deref().unwrap_or("(none recorded)")) }
                            @else { "(SQS keeps no failure reason; the consumer logged it with the message id)" }
                        }
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
            let moved_to = console
                .queues
                .redrive_message(&queue, &message)
                .await
                .map_err(PageError::admin)?;
            Ok(match moved_to {
                Some(source) => done(
                    &source,
                    &format!("Moved message {message} from {queue} back to {source}."),
                ),
                None => done(&queue, &format!("Message {message} was not moved: it is no longer in {queue}, or came from no queue.")),
            })
        }
        Action::Delete => {
            let deleted = console
                .queues
                .delete_message(&queue, &message)
                .await
                .map_err(PageError::admin)?;
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
    let moved = console
        .queues
        .redrive_all(&queue)
        .await
        .map_err(PageError::admin)?;
    Ok(done(
        &queue,
        &format!("Moved {moved} message(s) from {queue} back to their source queue."),
    ))
}
