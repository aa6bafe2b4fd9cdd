//! Seeded generators of event logs: the fixtures in `tests/fixtures` and the
//! benchmark's log. The same seed gives the same log, byte for byte (ids are
//! UUID v7 built from the event time and the seeded RNG).

use bytes::Bytes;
use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use router_rules::Topology;
use switchyard_shared::events::{
    EventType, ImageUploaded, LineItem, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped,
};
use switchyard_shared::Envelope;
use uuid::Uuid;

use super::log::{EventLog, LoggedBlob, LoggedEvent};
use crate::demo::{bad_image, sample_jpeg};

/// Where generated time starts: 2025-01-01T09:00:00Z.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0)
        .single()
        .expect("a valid date")
}

/// Builds events with seeded ids at given times.
struct Gen {
    rng: fastrand::Rng,
    topology: Topology,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            topology: Topology::builtin(),
        }
    }

    fn id(&mut self, at: DateTime<Utc>) -> Uuid {
        let mut bytes = [0u8; 10];
        self.rng.fill(&mut bytes);
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    }

    /// `event` as published at `at`, starting its own correlation.
    fn at(&mut self, at: DateTime<Utc>, event: impl EventType) -> Envelope {
        let id = self.id(at);
        let mut e = event.into_envelope().with_id(id);
        e.time = at;
        // Logged without a trace, as events recorded before tracing were: a
        // handler roots the trace at the event's id, the same trace `with_id`
        // names, so the committed fixtures keep their bytes.
        e.traceparent = None;
        e
    }

    /// The next order arrives 50..550 ms after the last (at `t`): its total.
    fn arrive(&mut self, t: &mut DateTime<Utc>) -> u64 {
        *t += TimeDelta::milliseconds(self.rng.i64(50..550));
        500 + self.rng.u64(0..20_000)
    }

    fn logged(&self, e: Envelope) -> LoggedEvent {
        LoggedEvent::routed(&self.topology, e).expect("generated events are routed")
    }
}

fn placed(order_id: &str, total: u64, customer: u64) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.to_owned(),
        customer_id: format!("customer-{customer}"),
        items: vec![LineItem {
            sku: format!("SKU-{}", total % 97),
            quantity: 1,
            unit_price_cents: total,
        }],
        total_cents: total,
        currency: "EUR".into(),
    }
}

fn paid(order_id: &str, total: u64) -> OrderPaid {
    OrderPaid {
        order_id: order_id.to_owned(),
        payment_id: format!("pay-{order_id}"),
        amount_cents: total,
    }
}

fn shipped(order_id: &str) -> OrderShipped {
    OrderShipped {
        order_id: order_id.to_owned(),
        carrier: "DHL".into(),
        tracking_number: format!("TRK-{order_id}"),
    }
}

fn cancelled(order_id: &str) -> OrderCancelled {
    OrderCancelled {
        order_id: order_id.to_owned(),
        reason: "customer changed their mind".into(),
    }
}

/// What happens to an order after it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Placed,
    Paid,
    Shipped,
    Cancelled,
    PaidThenCancelled,
}

impl History {
    fn pick(rng: &mut fastrand::Rng) -> History {
        match rng.u32(0..100) {
            0..40 => History::Shipped,
            40..55 => History::Paid,
            55..70 => History::Cancelled,
            70..80 => History::PaidThenCancelled,
            _ => History::Placed,
        }
    }
}

/// An order's events at their times, in history order.
fn order_events(
    g: &mut Gen,
    order_id: &str,
    total: u64,
    history: History,
    placed_at: DateTime<Utc>,
) -> Vec<Envelope> {
    let mut out = vec![g.at(placed_at, placed(order_id, total, total % 17))];
    let paid_at = placed_at + TimeDelta::milliseconds(g.rng.i64(1_000..20_000));
    let later = paid_at + TimeDelta::milliseconds(g.rng.i64(30_000..3_600_000));
    match history {
        History::Placed => {}
        History::Paid => out.push(g.at(paid_at, paid(order_id, total))),
        History::Shipped => {
            out.push(g.at(paid_at, paid(order_id, total)));
            out.push(g.at(later, shipped(order_id)));
        }
        History::Cancelled => out.push(g.at(paid_at, cancelled(order_id))),
        History::PaidThenCancelled => {
            out.push(g.at(paid_at, paid(order_id, total)));
            out.push(g.at(later, cancelled(order_id)));
        }
    }
    out
}

/// An image upload for an order: the blob and its `ImageUploaded`.
fn upload(
    g: &mut Gen,
    order_id: &str,
    at: DateTime<Utc>,
    bytes: Vec<u8>,
    content_type: &str,
) -> (LoggedBlob, Envelope) {
    let image_id = g.id(at).to_string();
    let key = format!("uploads/{order_id}/{image_id}");
    let event = g.at(
        at,
        ImageUploaded {
            image_id,
            order_id: order_id.to_owned(),
            key: key.clone(),
            content_type: content_type.to_owned(),
            size_bytes: bytes.len() as u64,
        },
    );
    let blob = LoggedBlob {
        key,
        content_type: content_type.to_owned(),
        bytes: Bytes::from(bytes),
    };
    (blob, event)
}

/// Bad uploads the image processor must reject (each with its rejection
/// code), small enough for a fixture.
pub const BAD_UPLOADS: &[&str] = &["corrupt", "not-an-image", "empty", "too-many-pixels"];

/// `orders` orders arriving about every 300 ms, each with a history
/// (40% shipped, 15% paid, 15% cancelled, 10% paid then cancelled, 20% only
/// placed); one in eight gets a photo a few seconds after it is placed, and
/// one in ten of those photos is a bad file. Every event is in the log at
/// its time, so orders interleave as they would in production.
pub fn orders_with_images(seed: u64, orders: usize) -> EventLog {
    let mut g = Gen::new(seed);
    let mut log = EventLog::default();
    let mut events: Vec<Envelope> = Vec::new();
    let mut t = epoch();
    let mut bad = 0usize;
    for i in 0..orders {
        let total = g.arrive(&mut t);
        let order_id = format!("order-{i:05}");
        let history = History::pick(&mut g.rng);
        events.extend(order_events(&mut g, &order_id, total, history, t));
        if g.rng.u32(0..8) == 0 {
            let at = t + TimeDelta::milliseconds(g.rng.i64(500..5_000));
            let (bytes, content_type) = if g.rng.u32(0..10) == 0 {
                let kind = BAD_UPLOADS[bad % BAD_UPLOADS.len()];
                bad += 1;
                let (bytes, ct) = bad_image(kind);
                (bytes, ct.to_owned())
            } else {
                let (w, h) = if g.rng.bool() { (64, 48) } else { (48, 64) };
                (sample_jpeg(w, h, i as u32), "image/jpeg".to_owned())
            };
            let (blob, event) = upload(&mut g, &order_id, at, bytes, &content_type);
            log.blobs.push(blob);
            events.push(event);
        }
    }
    events.sort_by_key(|e| (e.time, e.id));
    log.events = events.into_iter().map(|e| g.logged(e)).collect();
    log
}

/// `orders` orders whose events arrive out of order: every payment is
/// logged before its placement, and every shipment before its payment
/// (the events' `time` still says when each happened).
pub fn out_of_order(seed: u64, orders: usize) -> EventLog {
    let mut g = Gen::new(seed);
    let mut log = EventLog::default();
    let mut t = epoch();
    for i in 0..orders {
        let total = g.arrive(&mut t);
        let order_id = format!("late-{i:04}");
        let history = match i % 4 {
            0 => History::Shipped,
            1 => History::Paid,
            2 => History::PaidThenCancelled,
            _ => History::Cancelled,
        };
        let mut events = order_events(&mut g, &order_id, total, history, t);
        // Arrival order: the history backwards (last event first).
        events.reverse();
        log.events.extend(events.into_iter().map(|e| g.logged(e)));
    }
    log
}

/// The kinds of poison in [`poison`], and what the system must do with each.
pub const POISON_KINDS: &[(&str, &str)] = &[
    (
        "wrong-amount",
        "OrderPaid dead-lettered: amount does not match",
    ),
    ("second-payment", "OrderPaid dead-lettered: already paid"),
    (
        "never-placed",
        "OrderPaid dead-lettered: the order never comes",
    ),
    (
        "never-paid",
        "OrderShipped dead-lettered: the order is never paid",
    ),
    (
        "missing-original",
        "ImageUploaded dead-lettered: no such blob",
    ),
    ("future-version", "refused at publish: newer schema version"),
    ("invalid-detail", "refused at publish: missing field"),
];

/// `orders` good orders, with poison among them: every kind in
/// [`POISON_KINDS`], twice. The verdict on each poison does not depend on
/// arrival order, so the log's final state is the same under reordering.
pub fn poison(seed: u64, orders: usize) -> EventLog {
    let mut g = Gen::new(seed);
    let mut events: Vec<Envelope> = Vec::new();
    let mut t = epoch();
    let mut totals = Vec::new();
    for i in 0..orders {
        let total = g.arrive(&mut t);
        let order_id = format!("order-{i:04}");
        let history = match i % 3 {
            0 => History::Shipped,
            1 => History::Paid,
            _ => History::Placed,
        };
        totals.push((order_id.clone(), total, history));
        events.extend(order_events(&mut g, &order_id, total, history, t));
    }
    let end = t;
    for round in 0..2 {
        for (n, (kind, _)) in POISON_KINDS.iter().enumerate() {
            // A paid order (history Paid or Shipped) for the payment poisons.
            let (order_id, total, _) = totals
                .iter()
                .filter(|(_, _, h)| *h != History::Placed)
                .nth(round * POISON_KINDS.len() + n)
                .cloned()
                .expect("enough paid orders for the poison");
            let at = epoch()
                + TimeDelta::milliseconds(g.rng.i64(0..(end - epoch()).num_milliseconds().max(1)));
            let e = match *kind {
                "wrong-amount" => g.at(at, paid(&order_id, total + 1)),
                "second-payment" => {
                    let mut p = paid(&order_id, total);
                    p.payment_id = format!("pay-again-{order_id}");
                    g.at(at, p)
                }
                "never-placed" => g.at(at, paid(&format!("ghost-{round}-{n}"), 999)),
                "never-paid" => {
                    let (placed_only, _, _) = totals
                        .iter()
                        .filter(|(_, _, h)| *h == History::Placed)
                        .nth(round)
                        .cloned()
                        .expect("an unpaid order");
                    g.at(at, shipped(&placed_only))
                }
                "missing-original" => {
                    let image_id = g.id(at).to_string();
                    g.at(
                        at,
                        ImageUploaded {
                            key: format!("uploads/{order_id}/{image_id}"),
                            image_id,
                            order_id: order_id.clone(),
                            content_type: "image/jpeg".into(),
                            size_bytes: 1234,
                        },
                    )
                }
                "future-version" => {
                    let mut e = g.at(at, cancelled(&order_id));
                    e.schema_version = 99;
                    e
                }
                _ => {
                    let mut e = g.at(at, shipped(&order_id));
                    if let Some(d) = e.detail.as_object_mut() {
                        d.remove("carrier");
                    }
                    e
                }
            };
            events.push(e);
        }
    }
    events.sort_by_key(|e| (e.time, e.id));
    EventLog {
        blobs: Vec::new(),
        events: events.into_iter().map(|e| g.logged(e)).collect(),
    }
}

/// The benchmark's events: exactly `events` order events, every one of
/// which changes its order's status (so each has one `OrderStatusChanged`).
/// Orders come in waves of 500: their placements, then their payments, then
/// their shipments and cancellations, as a day of trading would. Order ids
/// are `bench-NNNNNNN`, numbered from 0. Generated a wave at a time, so a
/// run of 100,000 events does not hold them all in memory.
pub struct BenchEvents {
    g: Gen,
    t: DateTime<Utc>,
    order: usize,
    left: usize,
    wave: std::vec::IntoIter<Envelope>,
}

impl BenchEvents {
    const WAVE: usize = 500;

    pub fn new(seed: u64, events: usize) -> Self {
        BenchEvents {
            g: Gen::new(seed),
            t: epoch(),
            order: 0,
            left: events,
            wave: Vec::new().into_iter(),
        }
    }

    fn next_wave(&mut self) -> Vec<Envelope> {
        // Each order's history, cut to what is left to generate.
        let mut histories: Vec<Vec<Envelope>> = Vec::new();
        while histories.len() < Self::WAVE && self.left > 0 {
            self.t += TimeDelta::milliseconds(1);
            let order_id = format!("bench-{:07}", self.order);
            self.order += 1;
            let total = 500 + self.g.rng.u64(0..20_000);
            // Histories whose every event changes the status.
            let history = match self.g.rng.u32(0..10) {
                0..6 => History::Shipped,
                6..8 => History::Paid,
                _ => History::Cancelled,
            };
            let mut evs = order_events(&mut self.g, &order_id, total, history, self.t);
            evs.truncate(self.left);
            self.left -= evs.len();
            histories.push(evs);
        }
        // Every order's first event, then every second one, then every third.
        let mut histories: Vec<_> = histories.into_iter().map(Vec::into_iter).collect();
        (0..3)
            .flat_map(|_| {
                histories
                    .iter_mut()
                    .filter_map(Iterator::next)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Iterator for BenchEvents {
    type Item = Envelope;
    fn next(&mut self) -> Option<Envelope> {
        if let Some(e) = self.wave.next() {
            return Some(e);
        }
        if self.left == 0 {
            return None;
        }
        self.wave = self.next_wave().into_iter();
        self.wave.next()
    }
}

/// [`BenchEvents`] as a log (`switchyard replay generate bench`).
pub fn bench_orders(seed: u64, events: usize) -> EventLog {
    let topology = Topology::builtin();
    EventLog {
        blobs: Vec::new(),
        events: BenchEvents::new(seed, events)
            .map(|e| LoggedEvent::routed(&topology, e).expect("generated events are routed"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_seeded() {
        assert_eq!(orders_with_images(3, 40), orders_with_images(3, 40));
        assert_ne!(
            orders_with_images(3, 40).events,
            orders_with_images(4, 40).events
        );
        assert_eq!(poison(3, 40), poison(3, 40));
        assert_eq!(out_of_order(3, 8), out_of_order(3, 8));
    }

    #[test]
    fn bench_log_has_exactly_the_asked_events_each_changing_status() {
        let log = bench_orders(1, 1234);
        assert_eq!(log.events.len(), 1234);
        // Per order: placed first, then paid, then shipped or cancelled, never
        // a payment after a cancellation (which would not change the status).
        let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
        for e in &log.events {
            seen.entry(e.event.detail["order_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(e.event.detail_type.clone());
        }
        for (order, types) in seen {
            let types: Vec<&str> = types.iter().map(String::as_str).collect();
            assert!(
                matches!(
                    types[..],
                    ["OrderPlaced"]
                        | ["OrderPlaced", "OrderPaid"]
                        | ["OrderPlaced", "OrderPaid", "OrderShipped"]
                        | ["OrderPlaced", "OrderCancelled"]
                ),
                "{order}: {types:?}"
            );
        }
    }

    #[test]
    fn out_of_order_log_puts_payments_before_placements() {
        let log = out_of_order(1, 8);
        let types: Vec<&str> = log
            .events
            .iter()
            .filter(|e| e.event.detail["order_id"] == "late-0000")
            .map(|e| e.event.detail_type.as_str())
            .collect();
        assert_eq!(types, ["OrderShipped", "OrderPaid", "OrderPlaced"]);
    }
}
