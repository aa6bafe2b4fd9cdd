//! The HTTP API on its own (an in-memory table, a blob folder, a publisher
//! that records): idempotency keys, content types, body limits, headers,
//! errors; and the local server's Host/Origin checks, timeouts and limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use switchyard_producer::api::{router, ApiState};
use switchyard_producer::serve::{serve, ServeOptions};
use switchyard_shared::embedded::{EmbeddedStore, FolderBlobStore};
use switchyard_shared::ports::{EventPublisher, PublishError, PublishReport};
use switchyard_shared::Envelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Records what it publishes; with a gate, each publish first takes a permit.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Envelope>>,
    gate: Option<Arc<Semaphore>>,
    waiting: tokio::sync::Notify,
}

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        if let Some(gate) = &self.gate {
            self.waiting.notify_one();
            gate.acquire().await.unwrap().forget();
        }
        self.events.lock().unwrap().extend(events.iter().cloned());
        Ok(PublishReport {
            published: events.iter().map(|e| e.id).collect(),
            failed: Vec::new(),
        })
    }
}

struct Api {
    app: Router,
    state: ApiState,
    recorder: Arc<Recorder>,
    blob_dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Self {
        Self::with(Recorder::default(), |_| {})
    }

    fn with(recorder: Recorder, tune: impl FnOnce(&mut ApiState)) -> Self {
        let blob_dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::in_memory().unwrap();
        let recorder = Arc::new(recorder);
        let mut state = ApiState::new(
            Arc::new(store.table()),
            Arc::new(FolderBlobStore::new(blob_dir.path()).unwrap()),
            recorder.clone(),
        );
        tune(&mut state);
        Api {
            app: router(state.clone()),
            state,
            recorder,
            blob_dir,
        }
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(path).header("content-type", content_type);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let (status, _, bytes) = self.call(req.body(body.into()).unwrap()).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post_json(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.post(path, "application/json", key, body.to_string())
            .await
    }

    fn published(&self) -> Vec<Envelope> {
        self.recorder.events.lock().unwrap().clone()
    }

    async fn uploads(&self) -> usize {
        self.state.blobs.list("uploads/").await.unwrap().len()
    }
}

fn order(id: Option<&str>) -> Value {
    let mut body = json!({"customer_id": "c", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 100}], "currency": "EUR"});
    if let Some(id) = id {
        body["order_id"] = json!(id);
    }
    body
}

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0; 64]);
    bytes
}

const KEY: &str = "0b6c1c52-4f3a-4f3e-9d7e-0c1f6a2b3c4d";

#[tokio::test]
async fn one_key_on_two_orders_places_both() {
    let api = Api::new();
    for id in ["A", "B"] {
        let (status, body) = api.post_json("/orders", Some(KEY), order(Some(id))).await;
        assert_eq!(
            (status, body["order_id"].as_str()),
            (StatusCode::ACCEPTED, Some(id))
        );
    }
    let events = api.published();
    assert_eq!(events.len(), 2);
    assert_ne!(
        events[0].id, events[1].id,
        "B would be dropped as a duplicate of A"
    );
    assert_eq!(
        events
            .iter()
            .map(|e| e.detail["order_id"].clone())
            .collect::<Vec<_>>(),
        [json!("A"), json!("B")]
    );
}

#[tokio::test]
async fn one_key_on_two_commands_of_an_order_runs_both() {
    let api = Api::new();
    let pay = json!({"payment_id": "p", "amount_cents": 100});
    let ship = json!({"carrier": "c", "tracking_number": "t"});
    assert_eq!(
        api.post_json("/orders/A/pay", Some(KEY), pay).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        api.post_json("/orders/A/ship", Some(KEY), ship).await.0,
        StatusCode::ACCEPTED
    );
    let events = api.published();
    assert_eq!(events.len(), 2);
    assert_ne!(events[0].id, events[1].id);
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_publishes_the_same_event() {
    let api = Api::new();
    // No order_id: the first answer's generated id is the one a retry gets.
    let (s1, first) = api.post_json("/orders", Some(KEY), order(None)).await;
    let (s2, again) = api.post_json("/orders", Some(KEY), order(None)).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first, again);
    assert!(first["order_id"].as_str().is_some_and(|id| !id.is_empty()));
    // The replay published nothing new.
    let events = api.published();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].id.to_string(),
        first["event_id"].as_str().unwrap()
    );
    assert_eq!(events[0].detail["order_id"], first["order_id"]);

    let req = Request::post("/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", KEY)
        .body(Body::from(order(None).to_string()))
        .unwrap();
    let (_, headers, _) = api.call(req).await;
    assert_eq!(headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_retry_whose_first_run_never_finished_runs_to_the_same_ids() {
    let api = Api::new();
    let (_, first) = api.post_json("/orders", Some(KEY), order(None)).await;
    // As if the process died after publishing, before remembering the answer.
    let key = switchyard_producer::idempotency::record_key(KEY, "POST", "/orders", None);
    let mut item = api
        .state
        .table
        .get(&key)
        .await
        .unwrap()
        .expect("remembered");
    item.insert("version".into(), json!(1));
    item.remove("status");
    item.remove("answer");
    api.state
        .table
        .put(item, switchyard_shared::ports::Condition::Always)
        .await
        .unwrap();
    let (status, again) = api.post_json("/orders", Some(KEY), order(None)).await;
    assert_eq!((status, &again), (StatusCode::ACCEPTED, &first));
    let events = api.published();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, events[1].id, "the consumers see a duplicate");
    assert_eq!(events[0].id.get_version_num(), 7);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_a_422_and_publishes_nothing() {
    let api = Api::new();
    assert_eq!(
        api.post_json("/orders", Some(KEY), order(None)).await.0,
        StatusCode::ACCEPTED
    );
    let mut other = order(None);
    other["customer_id"] = json!("someone else");
    let (status, err) = api.post_json("/orders", Some(KEY), other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "Idempotency-Key");
    assert!(
        err["error"].as_str().unwrap().contains("POST /orders"),
        "{err}"
    );
    assert_eq!(api.published().len(), 1);
}

#[tokio::test]
async fn a_refused_command_does_not_use_up_its_key() {
    let api = Api::new();
    let (status, _) = api
        .post_json("/orders", Some(KEY), json!({"customer_id": "c"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api.post_json("/orders", Some(KEY), order(Some("A"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(api.published().len(), 1);
}

#[tokio::test]
async fn one_key_on_uploads_for_two_orders_records_both() {
    let api = Api::new();
    let mut images = Vec::new();
    for order_id in ["A", "B"] {
        let (status, body) = api
            .post(
                &format!("/orders/{order_id}/images"),
                "image/png",
                Some(KEY),
                png(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        images.push(body["image_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(images[0], images[1]);
    let events = api.published();
    assert_eq!(events.len(), 2);
    assert_ne!(
        events[0].id, events[1].id,
        "B's image would never be recorded"
    );
    assert_eq!(api.uploads().await, 2);
    // A retry of A's upload answers as the first did and stores nothing new.
    let (status, body) = api
        .post("/orders/A/images", "image/png", Some(KEY), png())
        .await;
    assert_eq!(
        (status, body["image_id"].as_str()),
        (StatusCode::ACCEPTED, Some(&*images[0]))
    );
    assert_eq!(api.uploads().await, 2);
}

#[tokio::test]
async fn json_commands_take_only_application_json() {
    let api = Api::new();
    let body = order(Some("A")).to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ] {
        let (status, err) = api.post("/orders", ct, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}: {err}");
        assert_eq!(err["field"], "Content-Type");
    }
    let (status, _) = api
        .post("/orders", "application/json; charset=utf-8", None, body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(api.published().len(), 1);
}

#[tokio::test]
async fn uploads_take_only_the_image_types_the_processor_reads() {
    let api = Api::new();
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    for (ct, bytes) in [
        ("image/svg+xml", svg.to_vec()),
        ("image/png", svg.to_vec()),
        ("image/jpeg", png()),
        ("text/html", png()),
        ("image/bmp", b"BM\0\0".to_vec()),
    ] {
        let (status, err) = api.post("/orders/A/images", ct, None, bytes).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}: {err}");
        assert_eq!(err["field"], "Content-Type");
    }
    assert_eq!(api.uploads().await, 0);
    assert!(api.published().is_empty());
}

#[tokio::test]
async fn bodies_over_a_routes_limit_are_refused_before_anything_is_stored() {
    let api = Api::with(Recorder::default(), |s| s.max_upload_bytes = 1000);
    let mut big_png = png();
    big_png.resize(1001, 0);
    let (status, _) = api
        .post("/orders/A/images", "image/png", None, big_png.clone())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Without a Content-Length (chunked), and with a key: refused while reading.
    let chunked = Body::from_stream(futures_stream(big_png.clone()));
    let (status, _) = api
        .post("/orders/A/images", "image/png", Some(KEY), chunked)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(api.uploads().await, 0);

    let mut huge = order(Some("A"));
    huge["customer_id"] = json!("c".repeat(switchyard_producer::api::MAX_JSON_BYTES));
    assert_eq!(
        api.post_json("/orders", None, huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(api.published().is_empty());
    // At the limit, an upload goes through.
    big_png.truncate(1000);
    assert_eq!(
        api.post("/orders/A/images", "image/png", None, big_png)
            .await
            .0,
        StatusCode::ACCEPTED
    );
}

fn futures_stream(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter(
        bytes
            .chunks(100)
            .map(|c| Ok(c.to_vec()))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn blobs_and_answers_carry_nosniff_and_a_csp_that_runs_nothing() {
    let api = Api::new();
    let (_, body) = api.post("/orders/A/images", "image/png", None, png()).await;
    let key = body["key"].as_str().unwrap();
    let (status, headers, bytes) = api
        .call(
            Request::get(format!("/blobs/{key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((status, bytes), (StatusCode::OK, png()));
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    let (_, headers, _) = api
        .call(Request::get("/orders/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn errors_name_no_filesystem_path() {
    let api = Api::new();
    let root = api.blob_dir.path().canonicalize().unwrap();
    // A file where the order's upload folder would go: the write fails.
    std::fs::create_dir_all(root.join("uploads")).unwrap();
    std::fs::write(root.join("uploads/A"), b"in the way").unwrap();
    let (status, err) = api.post("/orders/A/images", "image/png", None, png()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // A blob that leads outside the folder: the read is refused.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    std::fs::create_dir_all(root.join("uploads/B")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("uploads/B/x")).unwrap();
    let (status2, _, bytes) = api
        .call(
            Request::get("/blobs/uploads/B/x")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status2, StatusCode::SERVICE_UNAVAILABLE);
    for text in [
        err.to_string(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ] {
        assert!(
            !text.contains("/tmp") && !text.contains(root.to_str().unwrap()),
            "{text}"
        );
        assert!(!text.contains(outside.path().to_str().unwrap()), "{text}");
    }
}

// ---- the local server ----

struct Served {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(api: &Api, options: ServeOptions) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let app = api.app.clone();
        let task = tokio::spawn(async move {
            serve(listener, app, &options, async {
                let _ = stopped.await;
            })
            .await
        });
        Served {
            port,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }

    /// Sends `head` (and `body`) on a new connection and reads to its end;
    /// `None` if it is still open after `deadline`.
    async fn exchange(&self, raw: &[u8], deadline: Duration) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        conn.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        match tokio::time::timeout(deadline, conn.read_to_end(&mut out)).await {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    }

    async fn get(&self, host: &str, extra: &str) -> String {
        let raw =
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        self.exchange(raw.as_bytes(), Duration::from_secs(10))
            .await
            .expect("an answer")
    }
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn the_local_server_answers_only_its_own_host_and_origin() {
    let api = Api::new();
    let served = Served::start(&api, ServeOptions::default()).await;
    let me = format!("127.0.0.1:{}", served.port);
    let localhost = format!("localhost:{}", served.port);
    assert_eq!(status_of(&served.get(&me, "").await), "200");
    assert_eq!(status_of(&served.get(&localhost, "").await), "200");
    let same_origin = format!("Origin: http://{me}\r\n");
    assert_eq!(status_of(&served.get(&me, &same_origin).await), "200");
    // DNS rebinding: the page's own name arrives as the Host.
    let rebound = served
        .get(&format!("attacker.example:{}", served.port), "")
        .await;
    assert_eq!(status_of(&rebound), "403", "{rebound}");
    assert!(rebound.contains("\"field\":\"Host\""), "{rebound}");
    assert_eq!(status_of(&served.get("127.0.0.1:1", "").await), "403");
    for origin in ["http://attacker.example", "null", "http://127.0.0.1:1"] {
        let foreign = served.get(&me, &format!("Origin: {origin}\r\n")).await;
        assert_eq!(status_of(&foreign), "403", "{origin}: {foreign}");
    }
    // A cross-site form post (text/plain, foreign Origin) never reaches the handler.
    let body = order(Some("A")).to_string();
    let raw = format!(
        "POST /orders HTTP/1.1\r\nHost: {me}\r\nOrigin: http://attacker.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = served
        .exchange(raw.as_bytes(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status_of(&answer), "403", "{answer}");
    assert!(api.published().is_empty());
    served.stop().await;
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let api = Api::new();
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let served = Served::start(&api, options).await;
    let partial = format!(
        "POST /orders HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        served.port
    );
    let closed = served
        .exchange(partial.as_bytes(), Duration::from_secs(5))
        .await;
    assert!(
        closed.is_some(),
        "a slow-loris connection is still open after 5 s"
    );
    served.stop().await;
}

#[tokio::test]
async fn a_slow_request_body_is_cut_off() {
    let api = Api::new();
    let options = ServeOptions {
        body_read_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let served = Served::start(&api, options).await;
    for key in [None, Some(KEY)] {
        let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
        let head = format!(
            "POST /orders HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n{key}Content-Length: 100\r\n\r\n{{\"customer_id\"",
            served.port
        );
        let answer = served
            .exchange(head.as_bytes(), Duration::from_secs(5))
            .await
            .expect("a body that never arrives is answered within 5 s");
        assert_eq!(status_of(&answer), "408", "{answer}");
    }
    assert!(api.published().is_empty());
    served.stop().await;
}

#[tokio::test]
async fn requests_in_flight_are_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let api = Api::with(
        Recorder {
            gate: Some(gate.clone()),
            ..Recorder::default()
        },
        |_| {},
    );
    let options = ServeOptions {
        max_in_flight: 1,
        ..ServeOptions::default()
    };
    let served = Arc::new(Served::start(&api, options).await);
    let me = format!("127.0.0.1:{}", served.port);
    let body = order(Some("A")).to_string();
    let raw = format!(
        "POST /orders HTTP/1.1\r\nHost: {me}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let first = {
        let served = served.clone();
        tokio::spawn(async move {
            served
                .exchange(raw.as_bytes(), Duration::from_secs(20))
                .await
        })
    };
    // The first request is inside the handler, holding the only slot.
    tokio::time::timeout(Duration::from_secs(10), api.recorder.waiting.notified())
        .await
        .expect("the first request reaches the publisher");
    let second = {
        let served = served.clone();
        let me = me.clone();
        tokio::spawn(async move { served.get(&me, "").await })
    };
    // While it holds the slot, the second waits (given time to be wrongly served).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second request was handled beside the first"
    );
    gate.add_permits(1);
    assert_eq!(status_of(&first.await.unwrap().unwrap()), "202");
    assert_eq!(status_of(&second.await.unwrap()), "200");
    Arc::into_inner(served).unwrap().stop().await;
}

#[tokio::test]
async fn while_a_command_is_in_flight_its_key_takes_no_other_body() {
    let gate = Arc::new(Semaphore::new(0));
    let api = Arc::new(Api::with(
        Recorder {
            gate: Some(gate.clone()),
            ..Recorder::default()
        },
        |_| {},
    ));
    let first = {
        let api = api.clone();
        tokio::spawn(async move { api.post_json("/orders", Some(KEY), order(None)).await })
    };
    tokio::time::timeout(Duration::from_secs(10), api.recorder.waiting.notified())
        .await
        .expect("the first request reaches the publisher");
    let mut other = order(None);
    other["currency"] = json!("USD");
    let (status, err) = api.post_json("/orders", Some(KEY), other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    // The same body meanwhile runs to the same event (a duplicate the consumers drop).
    gate.add_permits(2);
    let (s2, twin) = api.post_json("/orders", Some(KEY), order(None)).await;
    let (s1, first) = first.await.unwrap();
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first, twin);
    let events = api.published();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, events[1].id);
}
