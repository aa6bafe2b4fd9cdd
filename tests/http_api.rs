//! The HTTP API in-process: validation errors name the field, commands flow
//! through the system, and an order reads back with its image variants.

mod common;
mod trace_hops;

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value, Vec<u8>) {
    call_with(app, method, path, &[("content-type", content_type)], body).await
}

async fn call_with(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, Value, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Body::from(body)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, bytes)
}

async fn post_json(app: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let (s, v, _) = call(
        app,
        "POST",
        path,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    (s, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field() {
    let t = common::start().await;
    let app = switchyard_producer::api::router(t.system.api_state());
    let good_item = json!({"sku": "s", "quantity": 1, "unit_price_cents": 100});
    let cases = [
        (
            "/orders",
            json!({"customer_id": "c", "items": [], "currency": "EUR"}),
            "items",
        ),
        (
            "/orders",
            json!({"customer_id": "c", "items": [{"sku": "s", "quantity": 0, "unit_price_cents": 1}], "currency": "EUR"}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"customer_id": "c", "items": [{"sku": "s", "quantity": "two", "unit_price_cents": 1}], "currency": "EUR"}),
            "items[0].quantity",
        ),
        (
            "/orders",
            json!({"customer_id": "c", "items": [good_item], "currency": "euro"}),
            "currency",
        ),
        (
            "/orders",
            json!({"customer_id": "", "items": [good_item], "currency": "EUR"}),
            "customer_id",
        ),
        (
            "/orders",
            json!({"order_id": "../etc", "customer_id": "c", "items": [good_item], "currency": "EUR"}),
            "order_id",
        ),
        (
            "/orders/o-1/pay",
            json!({"payment_id": "p"}),
            "amount_cents",
        ),
        (
            "/orders",
            json!({"customer_id": "c", "items": [{"sku": "s", "quantity": 1}], "currency": "EUR"}),
            "items[0].unit_price_cents",
        ),
        ("/orders/o-1/cancel", json!("cancel it"), "body"),
        (
            "/orders/o-1/ship",
            json!({"carrier": "", "tracking_number": "t"}),
            "carrier",
        ),
    ];
    for (path, body, field) in cases {
        let (status, err) = post_json(&app, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {err}");
        assert_eq!(err["field"], field, "{path} {body}: {err}");
        assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, err, _) = call(
        &app,
        "POST",
        "/orders/o-1/images",
        "text/plain",
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("Content-Type"))
    );
    // Nothing was published by any of them.
    t.system.wait_quiet(common::QUIET).await.unwrap();
    assert!(t.system.table.scan().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_an_image_reads_back_with_variant_urls() {
    let t = common::start().await;
    let app = switchyard_producer::api::router(t.system.api_state());
    let (status, placed) = post_json(&app, "/orders", json!({"order_id": "h-1", "customer_id": "c", "items": [{"sku": "s", "quantity": 2, "unit_price_cents": 250}], "currency": "EUR"})).await;
    assert_eq!(
        (status, placed["total_cents"].as_u64()),
        (StatusCode::ACCEPTED, Some(500))
    );
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([x as u8, y as u8, 9])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    let (status, upload, _) = call(&app, "POST", "/orders/h-1/images", "image/png", png).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{upload}");
    assert_eq!(
        post_json(
            &app,
            "/orders/h-1/pay",
            json!({"payment_id": "p", "amount_cents": 500})
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    t.system.wait_quiet(common::QUIET).await.unwrap();

    let (status, order, _) = call(&app, "GET", "/orders/h-1", "application/json", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (order["status"].as_str(), order["version"].as_u64()),
        (Some("PAID"), Some(2))
    );
    let image = &order["images"][0];
    assert_eq!(image["status"], "READY", "{order}");
    let url = image["variants"][0]["url"].as_str().unwrap();
    let (status, _, bytes) = call(&app, "GET", url, "", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "thumbnails are JPEG");

    // Paying again is refused up front: the order is already paid.
    assert_eq!(
        post_json(
            &app,
            "/orders/h-1/pay",
            json!({"payment_id": "p2", "amount_cents": 500})
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    let (status, _, _) = call(&app, "GET", "/blobs/..%2Fsecret", "", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        call(&app, "GET", "/orders/nope", "", Vec::new()).await.0,
        StatusCode::NOT_FOUND
    );
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([x as u8, y as u8, 9])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    png
}

/// Issue 14: one key on orders A and B, on uploads for both, and a retried
/// `POST /orders` without `order_id`: every acknowledged command takes effect, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_idempotency_key_loses_no_acknowledged_command() {
    let t = common::start().await;
    let app = switchyard_producer::api::router(t.system.api_state());
    let key = "3f0e6a8e-8c1b-4d6e-9a53-5b2f4c1d7e90";
    let json_with_key = [
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    let order = |id: Option<&str>| {
        let mut o = json!({"customer_id": "c", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 100}], "currency": "EUR"});
        if let Some(id) = id {
            o["order_id"] = json!(id);
        }
        o.to_string().into_bytes()
    };
    for id in ["i-A", "i-B"] {
        let (status, body, _) =
            call_with(&app, "POST", "/orders", &json_with_key, order(Some(id))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    for id in ["i-A", "i-B"] {
        let headers = [("content-type", "image/png"), ("idempotency-key", key)];
        let path = format!("/orders/{id}/images");
        let (status, body, _) = call_with(&app, "POST", &path, &headers, png(64, 48)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let mut generated = Vec::new();
    for _ in 0..3 {
        let (status, body, _) =
            call_with(&app, "POST", "/orders", &json_with_key, order(None)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        generated.push(body["order_id"].as_str().unwrap().to_owned());
    }
    assert!(
        generated.iter().all(|g| *g == generated[0]),
        "{generated:?}"
    );
    t.system.wait_quiet(common::QUIET).await.unwrap();

    for id in ["i-A", "i-B"] {
        let (status, order, _) = call(&app, "GET", &format!("/orders/{id}"), "", Vec::new()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "order {id} was acknowledged but does not exist"
        );
        assert_eq!(order["images"].as_array().map(Vec::len), Some(1), "{order}");
        assert_eq!(order["images"][0]["status"], "READY", "{order}");
    }
    let orders = switchyard::state::StateSnapshot::of(&*t.system.table)
        .await
        .unwrap()
        .orders;
    assert_eq!(orders.len(), 3, "{:?}", orders.keys());
    assert!(orders.contains_key(&generated[0]));
}

/// The API refuses, at the door, what the image processor would reject by type or size.
#[test]
fn the_api_takes_the_image_types_and_sizes_the_processor_reads() {
    use switchyard_imaging::{sniff, InputFormat, Limits};
    assert_eq!(
        switchyard_producer::api::DEFAULT_MAX_UPLOAD_BYTES as u64,
        Limits::default().max_bytes
    );
    assert_eq!(
        switchyard::RuntimeOptions::default().limits.max_bytes,
        Limits::default().max_bytes
    );
    let samples: [&[u8]; 7] = [
        b"\xFF\xD8\xFF\xE0rest",
        b"\x89PNG\r\n\x1a\nrest",
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"GIF89a....",
        b"GIF87a....",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"BM\0\0\0\0",
    ];
    for bytes in samples {
        let expected = sniff(bytes).map(|f| match f {
            InputFormat::Jpeg => "image/jpeg",
            InputFormat::Png => "image/png",
            InputFormat::Webp => "image/webp",
            InputFormat::Gif => "image/gif",
        });
        assert_eq!(
            switchyard_producer::api::image_type(bytes),
            expected,
            "{bytes:?}"
        );
    }
    assert_eq!(
        switchyard_producer::api::UPLOAD_TYPES.len(),
        4,
        "one per InputFormat"
    );
}

struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends raw bytes to `addr` and reads to the connection's end; `None` if it is still open after `deadline`.
async fn exchange(addr: &str, raw: &[u8], deadline: Duration) -> Option<String> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(deadline, conn.read_to_end(&mut out))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Issue 14, against `switchyard up` itself: a cross-site `text/plain` POST,
/// a DNS-rebound Host, a foreign Origin, and a slow-loris request head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchyard_up_refuses_cross_site_rebound_and_slow_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _up = Up(child);
    let mut line = String::new();
    // Blocks until `up` prints its one line (or exits).
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .expect("up prints its URL")
        .to_owned();
    let body = json!({"order_id": "x-1", "customer_id": "c", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 1}], "currency": "EUR"}).to_string();
    let post = |host: &str, extra: &str, content_type: &str| {
        format!(
            "POST /orders HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let ten = Duration::from_secs(10);
    let status = |answer: Option<String>| {
        let answer = answer.expect("an answer");
        answer.split(' ').nth(1).unwrap_or("").to_owned()
    };
    let text_plain = exchange(&addr, post(&addr, "", "text/plain").as_bytes(), ten).await;
    assert_eq!(status(text_plain), "415");
    let port = addr.rsplit(':').next().unwrap();
    let rebound = post(&format!("attacker.example:{port}"), "", "application/json");
    assert_eq!(
        status(exchange(&addr, rebound.as_bytes(), ten).await),
        "403"
    );
    let foreign = post(
        &addr,
        "Origin: http://attacker.example\r\n",
        "application/json",
    );
    assert_eq!(
        status(exchange(&addr, foreign.as_bytes(), ten).await),
        "403"
    );
    let good = post(
        &addr,
        &format!("Origin: http://{addr}\r\n"),
        "application/json",
    );
    assert_eq!(status(exchange(&addr, good.as_bytes(), ten).await), "202");
    // A head that never ends: closed once the header read timeout (10 s) passes.
    let partial = format!("POST /orders HTTP/1.1\r\nHost: {addr}\r\n");
    assert!(
        exchange(&addr, partial.as_bytes(), Duration::from_secs(30))
            .await
            .is_some(),
        "a slow-loris connection is still open after 30 s"
    );
}

/// Issue 19: an order placed through `switchyard up`'s API with a
/// `traceparent` is one trace through the order processor, the stream
/// reactor and the notifier, each hop the child of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_an_order_across_every_hop() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("up.log");
    let mut up = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    up.args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"));
    let up = trace_hops::UpWithLog::start(up, &log);
    up.place_traced_order("o-traced").await;
    let chain = trace_hops::CHAIN.map(str::to_owned);
    trace_hops::assert_one_trace_across_hops(&log, &chain, Duration::from_secs(30)).await;
}
