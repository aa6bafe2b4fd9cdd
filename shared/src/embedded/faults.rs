//! Fault injection for replay tests: fail a seeded fraction of table and blob
//! calls with a transient error, before they touch anything.
//!
//! Off by default; when off, the only cost on the hot path is one relaxed
//! atomic load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Which fraction of calls to fail, and the seed that makes a run repeatable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// Fraction (0.0..=1.0) of table calls (get, put, delete, transact, query)
    /// that fail with `TableError::Transient`. `scan` is never failed: it is
    /// how tests read the final state.
    pub table_error_rate: f64,
    /// Fraction (0.0..=1.0) of blob calls that fail with `BlobError::Transient`.
    pub blob_error_rate: f64,
}

/// A plan with a rate outside 0.0..=1.0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be within 0.0..=1.0, got {rate}")]
pub struct InvalidFaultPlan {
    pub name: &'static str,
    pub rate: f64,
}

/// Which port a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    Table,
    Blob,
}

/// The switch the adapters consult. Share one between a store and its blob
/// folder (`FolderBlobStore::with_faults`) so a single seed drives both.
#[derive(Debug, Default)]
pub struct Faults {
    active: AtomicBool,
    state: Mutex<Option<(FaultPlan, fastrand::Rng)>>,
    injected_table: AtomicU64,
    injected_blob: AtomicU64,
}

impl Faults {
    /// Turns injection on with `plan`, or off with `None`.
    pub fn set(&self, plan: Option<FaultPlan>) -> Result<(), InvalidFaultPlan> {
        if let Some(p) = plan {
            for (name, rate) in [
                ("table_error_rate", p.table_error_rate),
                ("blob_error_rate", p.blob_error_rate),
            ] {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(InvalidFaultPlan { name, rate });
                }
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = plan.map(|p| (p, fastrand::Rng::with_seed(p.seed)));
        self.active.store(plan.is_some(), Ordering::Release);
        Ok(())
    }

    /// Whether this call should fail; draws from the seeded RNG only when on.
    pub fn roll(&self, target: FaultTarget) -> bool {
        if !self.active.load(Ordering::Relaxed) {
            return false;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((plan, rng)) = state.as_mut() else {
            return false;
        };
        let rate = match target {
            FaultTarget::Table => plan.table_error_rate,
            FaultTarget::Blob => plan.blob_error_rate,
        };
        let fail = rate > 0.0 && rng.f64() < rate;
        if fail {
            match target {
                FaultTarget::Table => self.injected_table.fetch_add(1, Ordering::Relaxed),
                FaultTarget::Blob => self.injected_blob.fetch_add(1, Ordering::Relaxed),
            };
        }
        fail
    }

    /// How many faults were injected so far: (table, blob).
    pub fn injected(&self) -> (u64, u64) {
        (
            self.injected_table.load(Ordering::Relaxed),
            self.injected_blob.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_repeatable_when_on() {
        let f = Faults::default();
        assert!((0..1000).all(|_| !f.roll(FaultTarget::Table)));

        let plan = FaultPlan {
            seed: 7,
            table_error_rate: 0.3,
            blob_error_rate: 0.0,
        };
        f.set(Some(plan)).unwrap();
        let first: Vec<bool> = (0..1000).map(|_| f.roll(FaultTarget::Table)).collect();
        f.set(Some(plan)).unwrap();
        let second: Vec<bool> = (0..1000).map(|_| f.roll(FaultTarget::Table)).collect();
        assert_eq!(first, second, "same seed, same faults");
        let failed = first.iter().filter(|b| **b).count();
        assert!(
            (200..400).contains(&failed),
            "{failed} of 1000 failed at rate 0.3"
        );
        assert!(
            (0..100).all(|_| !f.roll(FaultTarget::Blob)),
            "blob rate 0 never fails"
        );
        assert_eq!(f.injected().0, 2 * failed as u64);

        assert!(f
            .set(Some(FaultPlan {
                seed: 1,
                table_error_rate: 1.5,
                blob_error_rate: 0.0
            }))
            .is_err());
        f.set(None).unwrap();
        assert!((0..1000).all(|_| !f.roll(FaultTarget::Table)));
    }
}
