//! The side-by-side benchmark of this engine and the `quamina` crate: the
//! same order and image events (about 1 KB each) against the same rules, on
//! one core, interleaved so that both see the same machine.
//!
//! The rules are a routing table of the kind Switchyard runs: each names a
//! detail-type or a customer, order or image and adds operator conditions
//! (numeric ranges, prefixes, suffixes, case-insensitive values,
//! anything-but, exists, arrays of objects, a few wildcards), so an event
//! matches a handful of rules however many there are.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_shared::events::{
    ImageProcessed, ImageRejected, ImageUploaded, ImageVariant, LineItem, OrderCancelled,
    OrderPaid, OrderPlaced, OrderShipped, OrderStatus, OrderStatusChanged,
};
use switchyard_shared::EventType;

use crate::BusMatcher;

/// A small deterministic generator (xorshift64*), so runs are comparable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).expect("below 16"))
            .collect()
    }
}

const CARRIERS: &[&str] = &["dhl", "ups", "fedex", "postnl", "dpd", "gls"];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "SEK", "CHF"];
const CONTENT_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];
const REJECT_CODES: &[&str] = &[
    "too_large",
    "too_many_pixels",
    "corrupt",
    "unsupported_type",
];
// Pools large enough that an event matches about one rule at every rule
// count: the benchmark measures matching, not the cost of long result lists.
const CUSTOMERS: u64 = 20_000;
const SKUS: u64 = 5_000;

fn customer(rng: &mut Rng) -> String {
    format!("c-{:05}", rng.below(CUSTOMERS))
}
fn sku(rng: &mut Rng) -> String {
    format!("sku-{:04}", rng.below(SKUS))
}
fn order_id(rng: &mut Rng) -> String {
    format!("o-{}", rng.hex(24))
}

/// `count` envelopes (JSON text) of all event types, about 1 KB each.
pub fn events(count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let order_id = order_id(&mut rng);
            let image_id = format!("i-{}", rng.hex(24));
            let ext = if rng.below(2) == 0 { "jpg" } else { "png" };
            let key = format!("uploads/{order_id}/{image_id}.{ext}");
            let mut env = match i % 8 {
                0 | 1 => OrderPlaced {
                    order_id,
                    customer_id: customer(&mut rng),
                    items: (0..6 + rng.below(5))
                        .map(|_| LineItem {
                            sku: sku(&mut rng),
                            quantity: 1 + rng.below(5) as u32,
                            unit_price_cents: 100 + rng.below(20_000),
                        })
                        .collect(),
                    total_cents: rng.below(200_000),
                    currency: rng.pick(CURRENCIES).to_string(),
                }
                .into_envelope(),
                2 => OrderPaid { order_id, payment_id: format!("pay-{}", rng.hex(32)), amount_cents: rng.below(200_000) }
                    .into_envelope(),
                3 => OrderShipped {
                    order_id,
                    carrier: rng.pick(CARRIERS).to_uppercase(),
                    tracking_number: rng.hex(18).to_uppercase(),
                }
                .into_envelope(),
                4 => ImageUploaded {
                    image_id,
                    order_id,
                    key,
                    content_type: rng.pick(CONTENT_TYPES).to_string(),
                    size_bytes: rng.below(20_000_000),
                }
                .into_envelope(),
                5 => ImageProcessed {
                    variants: ["cover", "thumb"]
                        .iter()
                        .map(|name| ImageVariant {
                            name: name.to_string(),
                            key: format!("thumbnails/{order_id}/{image_id}-{name}.webp"),
                            width: 512,
                            height: 512,
                            format: "webp".into(),
                            bytes: rng.below(200_000),
                        })
                        .collect(),
                    image_id,
                    order_id,
                }
                .into_envelope(),
                6 => {
                    if rng.below(2) == 0 {
                        ImageRejected {
                            image_id,
                            order_id,
                            code: rng.pick(REJECT_CODES).to_string(),
                            reason: "the image is over the size limit for this account tier, please resize".into(),
                        }
                        .into_envelope()
                    } else {
                        OrderCancelled { order_id, reason: "customer asked to cancel before shipping".into() }
                            .into_envelope()
                    }
                }
                _ => OrderStatusChanged {
                    order_id,
                    from: Some(OrderStatus::Paid),
                    to: *rng.pick(&[OrderStatus::Shipped, OrderStatus::Cancelled, OrderStatus::Paid]),
                    version: rng.below(10),
                }
                .into_envelope(),
            };
            env.resources = (0..5)
                .map(|_| format!("arn:aws:s3:::switchyard-blobs/uploads/{}/{}", rng.hex(16), rng.hex(16)))
                .collect();
            env.to_json()
        })
        .collect()
}

/// `count` EventBridge patterns of the routing-table kind described above.
pub fn rules(count: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| match i % 10 {
            0 => json!({
                "source": ["switchyard.orders"],
                "detail-type": ["OrderPlaced"],
                "detail": {"customer_id": [customer(&mut rng)], "total_cents": [{"numeric": [">", rng.below(150_000)]}]}
            }),
            1 => {
                let lo = rng.below(190_000);
                json!({"detail-type": ["OrderPaid"], "detail": {"amount_cents": [{"numeric": [">=", lo, "<", lo + 1 + rng.below(300)]}]}})
            }
            2 => json!({"detail": {"customer_id": [customer(&mut rng), customer(&mut rng)]}}),
            3 => json!({
                "detail-type": ["ImageUploaded"],
                "detail": {
                    "content_type": [{"prefix": "image/"}],
                    "size_bytes": [{"numeric": [">", rng.below(20_000_000)]}],
                    "order_id": [{"prefix": format!("o-{}", rng.hex(3))}]
                }
            }),
            4 => json!({"detail": {"items": {"sku": [sku(&mut rng)], "quantity": [{"numeric": [">=", 1 + rng.below(5)]}]}}}),
            5 => json!({
                "detail-type": ["OrderShipped"],
                "detail": {
                    "carrier": [{"equals-ignore-case": rng.pick(CARRIERS).to_string()}],
                    "tracking_number": [{"prefix": rng.hex(3).to_uppercase()}]
                }
            }),
            6 => json!({"detail": {"currency": [{"anything-but": ["EUR", *rng.pick(CURRENCIES)]}], "customer_id": [customer(&mut rng)]}}),
            7 => json!({"detail": {"key": [{"suffix": ".png"}], "order_id": [{"prefix": format!("o-{}", rng.hex(3))}]}}),
            8 => {
                if i % 40 == 8 {
                    json!({"detail": {"key": [{"wildcard": format!("uploads/o-{}*/*.jpg", rng.hex(3))}]}})
                } else {
                    json!({"detail-type": ["ImageRejected"], "detail": {"code": [*rng.pick(REJECT_CODES)], "image_id": [{"prefix": format!("i-{}", rng.hex(3))}]}})
                }
            }
            _ => json!({
                "detail": {"to": ["SHIPPED"], "from": [{"exists": true}], "order_id": [{"prefix": format!("o-{}", rng.hex(3))}]}
            }),
        })
        .collect()
}

/// One engine's rate at one rule count.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub events_per_s: f64,
    /// Matches per event, averaged (the same for both engines when they agree).
    pub matches_per_event: f64,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub rules: usize,
    pub ours: Rate,
    /// quamina's rate, or why it could not run this rule set.
    pub quamina: Result<Rate, String>,
    /// Events on which the two engines returned different rule sets.
    pub disagreements: usize,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        self.quamina
            .as_ref()
            .ok()
            .map(|q| self.ours.events_per_s / q.events_per_s)
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    pub event_bytes: f64,
}

impl Report {
    pub fn row(&self, rules: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.rules == rules)
    }

    /// `rules-bench ratio_vs_quamina_1000=X.XX slowdown_10_to_10000=Y.YY events_per_s_1000=N`
    pub fn summary(&self) -> String {
        let at = |n| self.row(n).map(|r| r.ours.events_per_s).unwrap_or(f64::NAN);
        let ratio = self.row(1000).and_then(Row::ratio).unwrap_or(f64::NAN);
        format!(
            "rules-bench ratio_vs_quamina_1000={ratio:.2} slowdown_10_to_10000={:.2} events_per_s_1000={:.0}",
            at(10) / at(10_000),
            at(1000)
        )
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub rule_counts: Vec<usize>,
    pub events: usize,
    /// Time per engine per rule count, split into rounds that alternate engines.
    pub measure: Duration,
    pub rounds: u32,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rule_counts: vec![10, 100, 1000, 10_000],
            events: 512,
            measure: Duration::from_secs(2),
            rounds: 5,
            seed: 42,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("our engine rejected a benchmark rule: {0}")]
    Ours(#[from] crate::PatternError),
    #[error("quamina rejected a benchmark rule: {0}")]
    Quamina(String),
}

/// Builds both engines over the same rules.
pub fn engines(rules: &[Value]) -> Result<(BusMatcher<u32>, quamina::Quamina<u32>), BenchError> {
    Ok((
        BusMatcher::compile(rules.iter().enumerate().map(|(i, r)| (i as u32, r)))?,
        build_quamina(rules)?,
    ))
}

fn build_quamina(rules: &[Value]) -> Result<quamina::Quamina<u32>, BenchError> {
    let mut q = quamina::Quamina::<u32>::new();
    for (i, r) in rules.iter().enumerate() {
        q.add_pattern(i as u32, &r.to_string())
            .map_err(|e| BenchError::Quamina(e.to_string()))?;
    }
    Ok(q)
}

/// Runs `f`, turning a panic into its message (quamina 0.7 panics on some
/// large rule sets when it freezes its automaton) without printing it.
pub fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_owned())
    })
}

pub fn ours_matches(m: &BusMatcher<u32>, event: &str) -> Vec<u32> {
    m.matches(event)
}

pub fn quamina_matches(q: &quamina::Quamina<u32>, event: &str) -> Vec<u32> {
    let mut v = q.matches_for_event(event.as_bytes()).unwrap_or_default();
    v.sort_unstable();
    v.dedup();
    v
}

/// Events per second of `f` over `events`, for about `budget`.
fn rate(events: &[String], budget: Duration, mut f: impl FnMut(&str) -> usize) -> (f64, f64) {
    let start = Instant::now();
    let (mut done, mut matched) = (0usize, 0usize);
    while start.elapsed() < budget {
        for e in events {
            matched += f(black_box(e));
        }
        done += events.len();
    }
    (
        done as f64 / start.elapsed().as_secs_f64(),
        matched as f64 / done.max(1) as f64,
    )
}

/// One rule count, set up for both engines.
struct Setup {
    rules: usize,
    ours: BusMatcher<u32>,
    quamina: quamina::Quamina<u32>,
    /// Disagreements, or why quamina could not run.
    checked: Result<usize, String>,
    best_ours: (f64, f64),
    best_quamina: (f64, f64),
}

/// Runs the whole comparison; `progress` sees each row once all are measured.
///
/// Every rule count and both engines are measured in each round, one after
/// the other, so that a change of load on the machine touches them alike;
/// the best round of each counts.
pub fn run(config: &Config, mut progress: impl FnMut(&Row)) -> Result<Report, BenchError> {
    let events = events(config.events, config.seed);
    let event_bytes =
        events.iter().map(String::len).sum::<usize>() as f64 / events.len().max(1) as f64;
    let mut setups = Vec::new();
    for &n in &config.rule_counts {
        let rules = rules(n, config.seed ^ n as u64);
        let ours = BusMatcher::compile(rules.iter().enumerate().map(|(i, r)| (i as u32, r)))?;
        let quamina = build_quamina(&rules)?;
        // Also warms quamina up: it freezes its automaton on the first match.
        let checked = quietly(|| {
            events
                .iter()
                .filter(|e| ours_matches(&ours, e) != quamina_matches(&quamina, e))
                .count()
        });
        setups.push(Setup {
            rules: n,
            ours,
            quamina,
            checked,
            best_ours: (0.0, 0.0),
            best_quamina: (0.0, 0.0),
        });
    }
    let slice = config.measure / config.rounds.max(1);
    let better = |best: &mut (f64, f64), r: (f64, f64)| {
        if r.0 > best.0 {
            *best = r;
        }
    };
    for _ in 0..config.rounds.max(1) {
        for s in &mut setups {
            let ours = &s.ours;
            better(
                &mut s.best_ours,
                rate(&events, slice, |e| ours.matches(e).len()),
            );
            if s.checked.is_ok() {
                let q = &s.quamina;
                let r = rate(&events, slice, |e| {
                    q.matches_for_event(e.as_bytes())
                        .map(|v| v.len())
                        .unwrap_or(0)
                });
                better(&mut s.best_quamina, r);
            }
        }
    }
    let rows: Vec<Row> = setups
        .into_iter()
        .map(|s| Row {
            rules: s.rules,
            ours: Rate {
                events_per_s: s.best_ours.0,
                matches_per_event: s.best_ours.1,
            },
            quamina: s
                .checked
                .as_ref()
                .map(|_| Rate {
                    events_per_s: s.best_quamina.0,
                    matches_per_event: s.best_quamina.1,
                })
                .map_err(Clone::clone),
            disagreements: s.checked.unwrap_or(0),
        })
        .collect();
    rows.iter().for_each(&mut progress);
    Ok(Report { rows, event_bytes })
}
