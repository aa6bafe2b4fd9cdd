//! The clock port: what the embedded runtime reads when it needs the time
//! (visibility expiries, delays, the FIFO deduplication window, stream
//! record times, message ages).
//!
//! Waiting is never done through this trait: everything that waits uses
//! `tokio::time` (`sleep`, `sleep_until`, `timeout`). A [`VirtualClock`]
//! reads tokio's clock, so on a runtime whose time is paused
//! (`tokio::time::pause`, or `Builder::start_paused`) both the waits and the
//! readings are virtual: when every task is idle and only timers remain,
//! tokio moves time straight to the next deadline instead of sleeping.
//! [`WallClock`] is the system clock, for `switchyard up`.
//!
//! ```
//! use switchyard_shared::ports::{Clock, VirtualClock, WallClock};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let clock = VirtualClock::starting_at(1_735_722_000_000); // 2025-01-01T09:00:00Z
//! tokio::time::sleep(std::time::Duration::from_secs(30)).await; // returns at once
//! assert_eq!(clock.now_ms(), 1_735_722_030_000);
//! assert!(clock.is_virtual() && !WallClock.is_virtual());
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Reads the time. Cheap, and shared as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The same instant as a timestamp (event `time` stamps).
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }

    /// True for a clock that follows tokio's (paused) time rather than the
    /// system's: adapters then must not wait for other OS threads through
    /// the runtime, as time would jump meanwhile (see [`VirtualClock`]).
    fn is_virtual(&self) -> bool {
        false
    }

    /// `wall` or `virtual`, for reports.
    fn name(&self) -> &'static str {
        if self.is_virtual() {
            "virtual"
        } else {
            "wall"
        }
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The wall clock, shared.
pub fn wall_clock() -> Arc<dyn Clock> {
    Arc::new(WallClock)
}

/// A clock that starts at a given epoch time and then follows tokio's clock
/// (`tokio::time::Instant`). On a runtime with paused time it is fully
/// virtual and reproducible: it reads the same values in the same order on
/// every run. Create it inside the runtime whose time it should follow.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    epoch_ms: i64,
    start: tokio::time::Instant,
}

impl VirtualClock {
    /// Reads `epoch_ms` now, and moves on with tokio's time.
    pub fn starting_at(epoch_ms: i64) -> Self {
        VirtualClock {
            epoch_ms,
            start: tokio::time::Instant::now(),
        }
    }

    /// How much (virtual) time passed since the clock was created.
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        let passed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX / 4);
        self.epoch_ms.saturating_add(passed)
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

thread_local! {
    static INLINE_BLOCKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as running a virtual-time runtime: [`run_blocking`]
/// then runs its work inline instead of on tokio's blocking pool, so the
/// order of everything that happens is decided by the one runtime thread
/// alone (and time cannot move while the work runs).
pub fn set_inline_blocking(inline: bool) {
    INLINE_BLOCKING.with(|c| c.set(inline));
}

/// Whether [`set_inline_blocking`] marked this thread.
pub fn inline_blocking() -> bool {
    INLINE_BLOCKING.with(|c| c.get())
}

/// Runs blocking work (file I/O, image decoding) off the async workers, as
/// `tokio::task::spawn_blocking` does; inline on a thread marked by
/// [`set_inline_blocking`] (deterministic replays).
pub async fn run_blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if inline_blocking() {
        Ok(f())
    } else {
        tokio::task::spawn_blocking(f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn virtual_time_follows_paused_tokio_time() {
        let clock = VirtualClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        let wall = std::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms(), 1_000 + 3_600_000);
        assert_eq!(clock.elapsed(), Duration::from_secs(3600));
        // An hour of virtual time is not an hour of wall time.
        assert!(wall.elapsed() < Duration::from_secs(60));
        assert_eq!(clock.name(), "virtual");
    }

    #[test]
    fn wall_clock_reads_the_system_time() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let read = WallClock.now_ms();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(read >= before.as_millis() as i64 && read <= after.as_millis() as i64);
        assert_eq!(WallClock.name(), "wall");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn run_blocking_runs_inline_only_where_marked() {
        let here = std::thread::current().id();
        let off = run_blocking(move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(off, here);
        set_inline_blocking(true);
        let on = run_blocking(move || std::thread::current().id())
            .await
            .unwrap();
        set_inline_blocking(false);
        assert_eq!(on, here);
    }
}
