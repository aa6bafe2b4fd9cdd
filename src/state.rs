//! The canonical snapshot of the table: what `switchyard state dump` prints
//! and what replays compare. It keeps what a correct system must agree on
//! whatever the delivery order (status, version, payment, image outcomes)
//! and leaves out what legitimately varies (event ids, timestamps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_shared::events::OrderStatus;
use switchyard_shared::items::{item_type, ImageRecord, ImageStatus, Order, TableRecord};
use switchyard_shared::ports::{Item, Table, TableError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub orders: BTreeMap<String, OrderState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub status: Option<OrderStatus>,
    pub version: u64,
    pub paid: bool,
    pub images: BTreeMap<String, ImageState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageState {
    pub status: ImageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_code: Option<String>,
    /// `name WxH format`, sorted.
    pub variants: Vec<String>,
}

impl StateSnapshot {
    pub async fn of(table: &dyn Table) -> Result<StateSnapshot, TableError> {
        StateSnapshot::of_items(&table.scan().await?)
    }

    /// The snapshot of these table items (others than orders and images are left out).
    pub fn of_items(items: &[Item]) -> Result<StateSnapshot, TableError> {
        let mut snapshot = StateSnapshot::default();
        let blank = || OrderState {
            status: None,
            version: 0,
            paid: false,
            images: BTreeMap::new(),
        };
        for item in items {
            match item_type(item) {
                Some(Order::TYPE) => {
                    let o = Order::from_item(item)?;
                    let entry = snapshot
                        .orders
                        .entry(o.order_id.clone())
                        .or_insert_with(blank);
                    (entry.status, entry.version, entry.paid) = (Some(o.status), o.version, o.paid);
                }
                Some(ImageRecord::TYPE) => {
                    let i = ImageRecord::from_item(item)?;
                    let mut variants: Vec<String> = i
                        .variants
                        .iter()
                        .map(|v| format!("{} {}x{} {}", v.name, v.width, v.height, v.format))
                        .collect();
                    variants.sort();
                    let image = ImageState {
                        status: i.status,
                        reject_code: i.reject_code,
                        variants,
                    };
                    snapshot
                        .orders
                        .entry(i.order_id)
                        .or_insert_with(blank)
                        .images
                        .insert(i.image_id, image);
                }
                _ => {}
            }
        }
        Ok(snapshot)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("snapshots serialise")
    }

    /// A readable diff: one line per order or image that differs.
    pub fn diff(&self, expected: &StateSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        let ids: std::collections::BTreeSet<&String> =
            self.orders.keys().chain(expected.orders.keys()).collect();
        for id in ids {
            match (expected.orders.get(id), self.orders.get(id)) {
                (Some(_), None) => out.push(format!("- order {id}: missing")),
                (None, Some(a)) => out.push(format!("+ order {id}: unexpected ({a:?})")),
                (Some(e), Some(a)) if e != a => {
                    if (e.status, e.version, e.paid) != (a.status, a.version, a.paid) {
                        out.push(format!(
                            "~ order {id}: expected {:?} v{} paid={}, got {:?} v{} paid={}",
                            e.status, e.version, e.paid, a.status, a.version, a.paid
                        ));
                    }
                    let images: std::collections::BTreeSet<&String> =
                        e.images.keys().chain(a.images.keys()).collect();
                    for img in images {
                        let (ei, ai) = (e.images.get(img), a.images.get(img));
                        if ei != ai {
                            out.push(format!(
                                "~ order {id} image {img}: expected {ei:?}, got {ai:?}"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Orders by status, for summaries.
    pub fn status_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for o in self.orders.values() {
            let name = o.status.map_or("UNPLACED", OrderStatus::as_str).to_owned();
            *counts.entry(name).or_insert(0) += 1;
        }
        counts
    }
}
