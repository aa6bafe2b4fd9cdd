//! Our checkout flow, replayed through the whole system on the virtual
//! clock, clean and with every fault at once.

use std::path::PathBuf;

use switchyard::replay::Rate;
use switchyard::scenario::Scenario;

fn checkout() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/checkout.jsonl")
}

#[tokio::test]
async fn checkout_ends_shipped_and_paid_and_the_ghost_payment_is_dead_lettered(
) -> anyhow::Result<()> {
    // Each event when its time in the log comes: seconds to minutes apart, no waiting.
    let clean = Scenario::replay(checkout()).rate(Rate::Log).run().await?;
    clean.assert_accounted();
    // Shipped 5 s after it was placed, paid 45 s later: the shipment waited
    // for the payment (its retries 30 virtual seconds apart), as on AWS.
    assert_eq!(
        clean.order("checkout-1").status.map(|s| s.as_str()),
        Some("SHIPPED")
    );
    assert!(clean.order("checkout-1").paid);
    assert_eq!(
        clean.order("checkout-2").status.map(|s| s.as_str()),
        Some("PAID")
    );
    clean.assert_dead_lettered("OrderPaid", "checkout-ghost", "");
    assert_eq!(clean.dead_letters.len(), 1, "{:?}", clean.dead_letters);

    let faulty = Scenario::replay(checkout())
        .rate(Rate::Log)
        .faults("duplicate=0.5,reorder=3,crash=0.2,transient=0.05,visibility-expiry=0.2".parse()?)
        .seed(42)
        .run()
        .await?;
    faulty.assert_accounted();
    faulty.assert_same_outcome(&clean);
    assert_eq!(faulty.report.clock, "virtual");
    Ok(())
}
