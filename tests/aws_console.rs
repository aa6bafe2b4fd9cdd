//! The console on `--backend aws` (issue 17), on moto: the queue and DLQ
//! pages read SQS, a dead letter is redriven to the queue it came from and
//! another deleted (each a POST with the same origin and the token), the
//! orders page reads DynamoDB, and the pages that need the embedded
//! recorder say why they are empty. The router runs in-process on a freshly
//! provisioned topology of its own names, with no pollers, so nothing
//! receives the messages but the console.

mod aws_common;
mod console_http;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use console_http::call;
use switchyard::console::{self, Console};
use switchyard_shared::ports::{OutgoingMessage, Queue};

const HOSTILE: &str = r#"{"note":"<script>alert(1)</script>"}"#;

#[tokio::test]
async fn queues_and_dead_letters_on_sqs_with_redrive_and_delete() {
    let endpoint = moto_or_skip!();
    let (_clients, topology, resources) = aws_common::provisioned(&endpoint).await;
    let processor = topology.consumer(&topology.consumers[0].name).unwrap();
    let (queue_name, dlq_name) = (processor.queue_name(), processor.dlq_name());
    let dlq = resources.dlqs[&processor.name].clone();
    let queue = resources.queues[&processor.name].clone();
    let ids = dlq
        .send_batch(vec![
            OutgoingMessage::new("dead letter one"),
            OutgoingMessage::new(HOSTILE),
        ])
        .await
        .unwrap();
    let (redriven, deleted) = (&ids[0], &ids[1]);

    let console = Console::aws(Arc::new(topology.clone()), &resources);
    let app = console::router(console.clone());
    let origin = ("origin", "http://127.0.0.1:8080");
    let token = format!("token={}", console.token);

    // Every queue with SQS's counts; the DLQ holds two.
    let (status, _, html) = call(&app, "GET", "/console/queues", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for q in [&queue_name, &dlq_name] {
        assert!(html.contains(&format!("data-queue=\"{q}\"")), "{q}: {html}");
    }
    // The DLQ's messages, escaped, and what SQS does not keep.
    let dlq_page = format!("/console/queues/{dlq_name}");
    let (status, _, html) = call(&app, "GET", &dlq_page, &[], "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("2 message(s) shown"), "{html}");
    for id in &ids {
        assert!(html.contains(id.as_str()), "{id}: {html}");
    }
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"));
    assert!(html.contains("SQS keeps no failure reason"), "{html}");
    // Looking made them visible again: both are still receivable.
    let counts = dlq.counts().await.unwrap();
    assert_eq!((counts.visible, counts.in_flight), (2, 0), "{counts:?}");

    // A polled queue's messages are not received by the console; it says why.
    let (status, _, html) = call(
        &app,
        "GET",
        &format!("/console/queues/{queue_name}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("maxReceiveCount"), "{html}");

    // Redrive one: without the token nothing moves; with it, it is on its queue.
    let redrive = format!("/console/queues/{dlq_name}/messages/{redriven}/redrive");
    let form = [
        origin,
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, _) = call(&app, "POST", &redrive, &form, "token=guess").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, html) = call(&app, "POST", &redrive, &form, &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("/console/queues/{queue_name}?done=Moved")),
        "{location}"
    );
    let back = queue
        .receive(10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].body, "dead letter one");

    // Delete the other: the DLQ is empty.
    let delete = format!("/console/queues/{dlq_name}/messages/{deleted}/delete");
    let (status, _, html) = call(&app, "POST", &delete, &form, &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    let counts = dlq.counts().await.unwrap();
    assert_eq!(counts.visible + counts.in_flight, 0, "{counts:?}");

    // DynamoDB-backed pages work; recorder-backed ones say why not.
    let (status, _, html) = call(&app, "GET", "/console/orders", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, _, html) = call(&app, "GET", "/console/", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("data-queue=\"{queue_name}\"")),
        "{html}"
    );
    assert!(html.contains("--backend aws"), "{html}");
    let (status, _, html) = call(&app, "GET", "/console/events", &[], "").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{html}");
    assert!(html.contains("CloudWatch"), "{html}");
}
