//! The image processor's memory budget: the messages of a batch run
//! concurrently, and a small file can decode to hundreds of megabytes, so
//! each decode first reserves the memory its header says it needs
//! (`switchyard_imaging::peak_memory`) and waits while the budget is spent.
//! Reservations are served in arrival order (tokio's semaphore is fair), and
//! one that needs more than the whole budget is refused at once rather than
//! waiting forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are KiB: a u32 of them (what one acquire takes) covers 4 TiB.
const UNIT: u64 = 1024;

/// Room left beside the decodes on Lambda: the runtime and SDK clients, the
/// batch's originals and encoded outputs, and the scratch buffers each
/// decoding thread keeps between images (up to 48 MiB a thread).
pub const LAMBDA_HEADROOM_MB: u64 = 256;
/// Overrides the budget (MiB), on Lambda and locally.
pub const BUDGET_ENV: &str = "SWITCHYARD_DECODE_MEMORY_MB";
/// The function's memory (MiB), set by Lambda.
pub const LAMBDA_MEMORY_ENV: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

/// The budget from the environment: `SWITCHYARD_DECODE_MEMORY_MB` if set,
/// else the Lambda function's memory less [`LAMBDA_HEADROOM_MB`] (at least a
/// quarter of it), else `fallback`.
pub fn budget_from_env(fallback: u64) -> u64 {
    budget_from(
        std::env::var(BUDGET_ENV).ok().as_deref(),
        std::env::var(LAMBDA_MEMORY_ENV).ok().as_deref(),
        fallback,
    )
}

fn budget_from(explicit_mb: Option<&str>, lambda_mb: Option<&str>, fallback: u64) -> u64 {
    let mb = |v: Option<&str>| {
        v.and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v > 0)
    };
    if let Some(explicit) = mb(explicit_mb) {
        return explicit << 20;
    }
    match mb(lambda_mb) {
        Some(memory) => memory.saturating_sub(LAMBDA_HEADROOM_MB).max(memory / 4) << 20,
        None => fallback,
    }
}

/// Shared by every message the processor handles (clones share it).
#[derive(Clone, Debug)]
pub struct DecodeBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    total_units: u64,
    /// Bytes reserved right now, and the most ever reserved at once.
    reserved: AtomicU64,
    peak: AtomicU64,
}

/// A reservation that needs more than the whole budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("needs {need} bytes, over the whole budget of {budget}")]
pub struct OverBudget {
    pub need: u64,
    pub budget: u64,
}

impl DecodeBudget {
    pub fn new(bytes: u64) -> Self {
        let total_units = (bytes / UNIT).min(u32::MAX as u64);
        DecodeBudget {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(total_units as usize)),
                total_units,
                reserved: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }),
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.inner.total_units * UNIT
    }

    /// Bytes reserved right now.
    pub fn reserved(&self) -> u64 {
        self.inner.reserved.load(Ordering::SeqCst)
    }

    /// The most bytes ever reserved at once.
    pub fn peak_reserved(&self) -> u64 {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Waits until `bytes` fit beside the other reservations, and holds them
    /// until the returned reservation is dropped.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let units = bytes.div_ceil(UNIT).max(1);
        if units > self.inner.total_units {
            return Err(OverBudget {
                need: bytes,
                budget: self.total(),
            });
        }
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_many_owned(units as u32)
            .await
            .expect("the budget's semaphore is never closed");
        let held = units * UNIT;
        let now = self.inner.reserved.fetch_add(held, Ordering::SeqCst) + held;
        self.inner.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Reservation {
            _permit: permit,
            bytes: held,
            inner: self.inner.clone(),
        })
    }
}

/// Memory held for one decode; released on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    inner: Arc<Inner>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Before the permit itself is released (fields drop after this), so
        // the counter never shows more than the semaphore allowed.
        self.inner.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_reservation_waits_until_the_memory_is_released() {
        let budget = DecodeBudget::new(100 << 20);
        let first = budget.reserve(60 << 20).await.unwrap();
        let mut second = Box::pin(budget.reserve(60 << 20));
        assert!((&mut second).now_or_never().is_none(), "60 + 60 > 100 MiB");
        // A smaller one queued behind it waits its turn too (fair order).
        assert!(budget.reserve(10 << 20).now_or_never().is_none());
        assert_eq!(budget.reserved(), 60 << 20);
        drop(first);
        let second = second.now_or_never().expect("released memory").unwrap();
        assert_eq!(budget.reserved(), 60 << 20);
        assert_eq!(budget.peak_reserved(), 60 << 20);
        drop(second);
        assert_eq!(budget.reserved(), 0);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = DecodeBudget::new(100 << 20);
        let _held = budget.reserve(100 << 20).await.unwrap();
        let err = budget.reserve((100 << 20) + 1).now_or_never();
        assert_eq!(
            err.expect("refused without waiting").unwrap_err(),
            OverBudget {
                need: (100 << 20) + 1,
                budget: 100 << 20
            }
        );
    }

    #[test]
    fn the_budget_comes_from_lambda_memory_or_the_override() {
        let fallback = 7 << 20;
        assert_eq!(budget_from(None, None, fallback), fallback);
        assert_eq!(budget_from(None, Some("1024"), fallback), 768 << 20);
        // A small function keeps a quarter for decodes rather than nothing.
        assert_eq!(budget_from(None, Some("128"), fallback), 32 << 20);
        assert_eq!(budget_from(Some("300"), Some("1024"), fallback), 300 << 20);
        assert_eq!(budget_from(Some("lots"), None, fallback), fallback);
        assert_eq!(budget_from(Some("0"), Some("2048"), fallback), 1792 << 20);
    }
}
