//! The HTTP API in-process: validation errors name the field, commands flow
//! through the system, and an order reads back with its image variants.

mod common;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
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
        (StatusCode::BAD_REQUEST, Some("Content-Type"))
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
