//! The order state machine, as a pure function of (current order, event).
//!
//! ```text
//! PLACED ──pay──▶ PAID ──ship──▶ SHIPPED
//!    └──cancel──▶ CANCELLED ◀──cancel──┘ (from PAID)
//! ```
//!
//! Delivery is at least once and out of order, so the machine is written to
//! converge: an event that arrives too early (payment before placement,
//! shipment before payment) is retried until its turn comes, and a payment
//! that arrives after a cancellation is still recorded (the order stays
//! CANCELLED). Every valid history therefore ends in the same order,
//! whatever the arrival order: same status, same version, same fields.

use switchyard_shared::events::{DomainEvent, OrderStatus};
use switchyard_shared::items::Order;
use uuid::Uuid;

/// What the processor should do with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this order (its version is one more than the current one).
    Write(Box<Order>),
    /// Not applicable yet; retry later.
    NotYet(String),
    /// Never applicable; dead-letter with this reason.
    Reject(String),
}

/// Decides the effect of `event` on `current`. `event_id` and `correlation_id`
/// are recorded on the written order.
pub fn decide(
    current: Option<&Order>,
    event: &DomainEvent,
    event_id: Uuid,
    correlation_id: Uuid,
) -> Decision {
    use OrderStatus::*;
    let next = |mut order: Order| {
        order.version += 1;
        order.last_event_id = event_id;
        order.correlation_id = correlation_id;
        Decision::Write(Box::new(order))
    };
    match (event, current) {
        (DomainEvent::OrderPlaced(e), None) => Decision::Write(Box::new(Order {
            order_id: e.order_id.clone(),
            status: Placed,
            version: 1,
            customer_id: e.customer_id.clone(),
            items: e.items.clone(),
            total_cents: e.total_cents,
            currency: e.currency.clone(),
            paid: false,
            payment_id: None,
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            correlation_id,
            last_event_id: event_id,
            traceparent: None,
        })),
        (DomainEvent::OrderPlaced(e), Some(_)) => {
            Decision::Reject(format!("order {} already exists", e.order_id))
        }
        (_, None) => Decision::NotYet(format!("order {} is not placed yet", event.order_id())),

        (DomainEvent::OrderPaid(e), Some(o)) => {
            if o.paid {
                return Decision::Reject(format!("order {} is already paid", o.order_id));
            }
            if e.amount_cents != o.total_cents {
                return Decision::Reject(format!(
                    "payment of {} does not match order total {}",
                    e.amount_cents, o.total_cents
                ));
            }
            let mut paid = o.clone();
            paid.paid = true;
            paid.payment_id = Some(e.payment_id.clone());
            // A payment after a cancellation is recorded (for the refund) but does not revive the order.
            if o.status == Placed {
                paid.status = Paid;
            }
            next(paid)
        }

        (DomainEvent::OrderShipped(e), Some(o)) => match o.status {
            Placed => Decision::NotYet(format!("order {} is not paid yet", o.order_id)),
            Paid => {
                let mut shipped = o.clone();
                shipped.status = Shipped;
                shipped.carrier = Some(e.carrier.clone());
                shipped.tracking_number = Some(e.tracking_number.clone());
                next(shipped)
            }
            Shipped => Decision::Reject(format!("order {} is already shipped", o.order_id)),
            Cancelled => {
                Decision::Reject(format!("order {} is cancelled and cannot ship", o.order_id))
            }
        },

        (DomainEvent::OrderCancelled(e), Some(o)) => match o.status {
            Placed | Paid => {
                let mut cancelled = o.clone();
                cancelled.status = Cancelled;
                cancelled.cancel_reason = Some(e.reason.clone());
                next(cancelled)
            }
            Shipped => Decision::Reject(format!(
                "order {} is already shipped and cannot be cancelled",
                o.order_id
            )),
            Cancelled => Decision::Reject(format!("order {} is already cancelled", o.order_id)),
        },

        (other, Some(_)) => Decision::Reject(format!(
            "the order processor does not handle {}",
            other.detail_type()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::events::*;

    fn placed() -> DomainEvent {
        DomainEvent::OrderPlaced(OrderPlaced {
            order_id: "o".into(),
            customer_id: "c".into(),
            items: vec![],
            total_cents: 500,
            currency: "EUR".into(),
        })
    }
    fn paid() -> DomainEvent {
        DomainEvent::OrderPaid(OrderPaid {
            order_id: "o".into(),
            payment_id: "p".into(),
            amount_cents: 500,
        })
    }
    fn shipped() -> DomainEvent {
        DomainEvent::OrderShipped(OrderShipped {
            order_id: "o".into(),
            carrier: "dhl".into(),
            tracking_number: "t".into(),
        })
    }
    fn cancelled() -> DomainEvent {
        DomainEvent::OrderCancelled(OrderCancelled {
            order_id: "o".into(),
            reason: "r".into(),
        })
    }

    /// Applies events as the processor would: retrying "not yet" ones after
    /// each successful write, dead-lettering rejected ones.
    fn run(events: &[DomainEvent]) -> (Option<Order>, Vec<String>) {
        let mut order: Option<Order> = None;
        let mut pending: Vec<&DomainEvent> = events.iter().collect();
        let mut rejected = Vec::new();
        let corr = Uuid::nil();
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for e in pending {
                match decide(order.as_ref(), e, Uuid::nil(), corr) {
                    Decision::Write(o) => {
                        order = Some(*o);
                        progressed = true;
                    }
                    Decision::NotYet(_) => still.push(e),
                    Decision::Reject(r) => rejected.push(r),
                }
            }
            pending = still;
            if !progressed || pending.is_empty() {
                return (order, rejected);
            }
        }
    }

    fn permutations(items: Vec<DomainEvent>) -> Vec<Vec<DomainEvent>> {
        if items.len() <= 1 {
            return vec![items];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.clone();
            let head = rest.remove(i);
            for mut p in permutations(rest) {
                p.insert(0, head.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn every_arrival_order_of_a_valid_history_converges() {
        let histories = [
            (
                vec![placed(), paid(), shipped()],
                OrderStatus::Shipped,
                3,
                true,
            ),
            (
                vec![placed(), paid(), cancelled()],
                OrderStatus::Cancelled,
                3,
                true,
            ),
            (
                vec![placed(), cancelled()],
                OrderStatus::Cancelled,
                2,
                false,
            ),
            (vec![placed(), paid()], OrderStatus::Paid, 2, true),
        ];
        for (history, status, version, was_paid) in histories {
            let in_order = run(&history).0.expect("placed");
            for arrival in permutations(history.clone()) {
                let (order, rejected) = run(&arrival);
                let order = order.expect("placed");
                assert!(rejected.is_empty(), "{arrival:?}: rejected {rejected:?}");
                assert_eq!(
                    (order.status, order.version, order.paid),
                    (status, version, was_paid),
                    "{arrival:?}"
                );
                assert_eq!(order, in_order, "{arrival:?} diverged from in-order");
            }
        }
    }

    #[test]
    fn invalid_transitions_are_rejected_with_reasons() {
        let (order, rejected) = run(&[placed(), paid(), shipped(), cancelled()]);
        assert_eq!(order.unwrap().status, OrderStatus::Shipped);
        assert!(rejected[0].contains("already shipped"), "{rejected:?}");
        let (_, rejected) = run(&[placed(), cancelled(), shipped()]);
        assert!(
            rejected[0].contains("cancelled and cannot ship"),
            "{rejected:?}"
        );
        let (_, rejected) = run(&[placed(), placed()]);
        assert!(rejected[0].contains("already exists"));
    }

    #[test]
    fn early_events_wait_and_wrong_amounts_are_rejected() {
        assert!(matches!(
            decide(None, &paid(), Uuid::nil(), Uuid::nil()),
            Decision::NotYet(_)
        ));
        let Decision::Write(order) = decide(None, &placed(), Uuid::nil(), Uuid::nil()) else {
            panic!()
        };
        assert!(matches!(
            decide(Some(&order), &shipped(), Uuid::nil(), Uuid::nil()),
            Decision::NotYet(_)
        ));
        let short = DomainEvent::OrderPaid(OrderPaid {
            order_id: "o".into(),
            payment_id: "p".into(),
            amount_cents: 1,
        });
        assert!(matches!(
            decide(Some(&order), &short, Uuid::nil(), Uuid::nil()),
            Decision::Reject(_)
        ));
    }
}
