//! The console in-process (its router on a running embedded system): pages
//! escape what events hold, carry the CSP, and state-changing POSTs need the
//! same origin and the token. The browser test (tests/browser) checks the
//! same pages in chromium.

mod console_http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use console_http::call;
use router_rules::Topology;
use switchyard::console::recorder::HopKind;
use switchyard::console::{self, Console, Recorder, RecorderLimits};
use switchyard::{EmbeddedSystem, RuntimeOptions};
use switchyard_shared::events::{EventType, LineItem, OrderPaid, OrderPlaced};

struct Harness {
    system: EmbeddedSystem,
    app: axum::Router,
    console: Console,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let topology = Arc::new(Topology::builtin());
    let mut system = EmbeddedSystem::in_memory(dir.path(), topology.clone()).unwrap();
    let mut options = RuntimeOptions {
        retry_cap: Duration::from_millis(20),
        ..RuntimeOptions::default()
    };
    let recorder = Recorder::new(topology, RecorderLimits::default()).unwrap();
    recorder.install(&mut system, &mut options);
    system.start(&options).await.unwrap();
    let console = Console::new(&system, recorder);
    let app = console::router(console.clone());
    Harness {
        system,
        app,
        console,
        _dir: dir,
    }
}

async fn wait_for(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An OrderPlaced of one item.
fn placed(order_id: &str, customer_id: &str, sku: &str) -> switchyard_shared::Envelope {
    OrderPlaced {
        order_id: order_id.into(),
        customer_id: customer_id.into(),
        items: vec![LineItem {
            sku: sku.into(),
            quantity: 1,
            unit_price_cents: 100,
        }],
        total_cents: 100,
        currency: "EUR".into(),
    }
    .into_envelope()
}

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(2)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_render_as_text_under_a_csp_without_inline_script() {
    let h = start().await;
    let event = placed("o-x", SCRIPT, IMG);
    let id = event.id;
    h.system.publisher.publish(&[event]).await.unwrap();
    h.system.wait_quiet(Duration::from_secs(20)).await.unwrap();
    for path in [
        format!("/console/events/{id}"),
        "/console/orders/o-x".to_owned(),
        "/console/events".to_owned(),
        "/console/".to_owned(),
    ] {
        let (status, headers, html) = call(&h.app, "GET", &path, &[], "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(!html.contains(SCRIPT), "{path} holds the raw <script>");
        assert!(!html.contains("<img src=x"), "{path} holds the raw <img>");
        // The only script element is the console's own file.
        assert_eq!(html.matches("<script").count(), 1, "{path}");
        if path.contains(&id.to_string()) || path.ends_with("o-x") {
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{path} shows the value as text"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lineage_follows_an_order_to_its_derived_status_change() {
    let h = start().await;
    let placed = placed("o-1", "c-1", "mug");
    let id = placed.id;
    h.system.publisher.publish(&[placed]).await.unwrap();
    let app = h.app.clone();
    wait_for("the derived OrderStatusChanged to be handled", async || {
        let (_, _, html) = call(&app, "GET", &format!("/console/events/{id}"), &[], "").await;
        html.contains(r#"data-detail-type="OrderStatusChanged""#)
            && html.matches(r#"data-hop="handler""#).count() >= 2
    })
    .await;
    let (_, _, html) = call(&h.app, "GET", &format!("/console/events/{id}"), &[], "").await;
    for hop in ["published", "matched", "handler", "table change"] {
        assert!(
            html.contains(&format!(r#"data-hop="{hop}""#)),
            "no {hop} hop"
        );
    }
    assert!(html.contains("rule order-lifecycle"));
    assert!(html.contains("rule order-notifications"));
    // The filter box: the rule engine's verdict, and its error.
    let pattern = "%7B%22detail-type%22%3A%5B%22OrderStatusChanged%22%5D%7D";
    let (_, _, html) = call(
        &h.app,
        "GET",
        &format!("/console/events?pattern={pattern}"),
        &[],
        "",
    )
    .await;
    assert!(html.contains(">OrderStatusChanged<") && !html.contains(">OrderPlaced<"));
    let (_, _, html) = call(
        &h.app,
        "GET",
        "/console/events?pattern=%7B%22detail-type%22%3A1%7D",
        &[],
        "",
    )
    .await;
    assert!(html.contains("Invalid pattern:"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_needs_the_same_origin_and_the_token_then_moves_the_message_back() {
    let h = start().await;
    // A payment for an order that never comes: retried until it is dead-lettered.
    let poison = OrderPaid {
        order_id: "ghost".into(),
        payment_id: "p".into(),
        amount_cents: 1,
    }
    .into_envelope();
    h.system
        .publisher
        .publish(std::slice::from_ref(&poison))
        .await
        .unwrap();
    let store = h.system.store.clone();
    wait_for("the poison message in the DLQ", async || {
        store
            .list_messages("order-processor-dlq", 10)
            .unwrap()
            .len()
            == 1
    })
    .await;
    let message = &store.list_messages("order-processor-dlq", 10).unwrap()[0];
    let (_, _, html) = call(
        &h.app,
        "GET",
        "/console/queues/order-processor-dlq",
        &[],
        "",
    )
    .await;
    let reason = message.last_failure.clone().expect("a reason");
    assert!(
        html.contains(&maud::html! { (reason) }.into_string()),
        "the reason is shown"
    );
    let url = format!(
        "/console/queues/order-processor-dlq/messages/{}/redrive",
        message.message_id
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let token = format!("token={}", h.console.token);
    // No Origin, another origin, a wrong token: refused, nothing moves.
    for (origin, body) in [
        (None, token.as_str()),
        (Some("http://evil.example"), token.as_str()),
        (Some("http://127.0.0.1:8080"), "token=guess"),
    ] {
        let mut headers = form.to_vec();
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let (status, _, _) = call(&h.app, "POST", &url, &headers, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?} {body}");
        assert_eq!(
            store
                .list_messages("order-processor-dlq", 10)
                .unwrap()
                .len(),
            1
        );
    }
    let mut headers = form.to_vec();
    headers.push(("origin", "http://127.0.0.1:8080"));
    let (status, headers, _) = call(&h.app, "POST", &url, &headers, &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("/console/queues/order-processor?done=Moved"),
        "{location}"
    );
    // It went back to its queue: received there afresh (its first receive again).
    let recorder = h
        .console
        .recorder
        .clone()
        .expect("the embedded console records");
    let first_receives = move || {
        recorder.lineage(poison.correlation_id)[0]
            .1
            .iter()
            .filter(|hop| {
                matches!(
                    &hop.kind,
                    HopKind::Handled {
                        receive_count: 1,
                        ..
                    }
                )
            })
            .count()
    };
    wait_for("the redriven message to be received again", async || {
        first_receives() == 2
    })
    .await;
    // Delete: gone for good.
    wait_for("the poison message back in the DLQ", async || {
        store
            .list_messages("order-processor-dlq", 10)
            .unwrap()
            .len()
            == 1
    })
    .await;
    let url = format!(
        "/console/queues/order-processor-dlq/messages/{}/delete",
        message.message_id
    );
    let mut headers = form.to_vec();
    headers.push(("origin", "http://127.0.0.1:8080"));
    let (status, _, _) = call(&h.app, "POST", &url, &headers, &token).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(store
        .list_messages("order-processor-dlq", 10)
        .unwrap()
        .is_empty());
}
