//! An example of a user's crate that tests its event flows with
//! `switchyard::scenario::Scenario`: see `tests/orders.rs` and the log it
//! replays, `tests/scenarios/checkout.jsonl`.
