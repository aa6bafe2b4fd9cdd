//! Measurement helpers for `switchyard bench images`: CPU time of this
//! process, and its peak RSS as the kernel accounts it (the whole process,
//! not what the allocator believes).

use std::io;
use std::time::Duration;

/// CPU time (user + system) consumed by the whole process so far.
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(
        rc, 0,
        "CLOCK_PROCESS_CPUTIME_ID is always available on Linux"
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Peak resident set size of this process so far (VmHWM), in bytes.
///
/// Read in the measured process itself: a parent's rusage for a child is
/// not usable here, because a child started with vfork/posix_spawn inherits
/// the parent's high-water mark across exec.
pub fn own_peak_rss() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmHWM line in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_touched_memory() {
        let before = own_peak_rss().unwrap();
        let big = vec![1u8; 48 << 20];
        std::hint::black_box(&big);
        let after = own_peak_rss().unwrap();
        assert!(
            after >= before.max(48 << 20),
            "before {before}, after touching 48 MiB {after}"
        );
    }

    #[test]
    fn cpu_time_advances_with_work() {
        let before = process_cpu_time();
        let mut x = 0u64;
        while process_cpu_time() - before < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(process_cpu_time() > before);
    }
}
