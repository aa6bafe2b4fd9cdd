//! Measurement helpers for `switchyard bench images`: CPU time of this
//! process, and the peak RSS of a child process (the whole process, as the
//! kernel accounts it, rather than what the allocator believes).

use std::io;
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// CPU time (user + system) consumed by the whole process so far.
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_PROCESS_CPUTIME_ID is always available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `command` to completion and returns its exit status and peak resident
/// set size in bytes, from `wait4`'s rusage for that one child.
pub fn run_with_peak_rss(command: &mut Command) -> io::Result<(ExitStatus, u64)> {
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value for the out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped (std does not reap on its own).
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // The child is reaped; dropping the handle neither waits nor kills.
    drop(child);
    use std::os::unix::process::ExitStatusExt;
    // ru_maxrss is in kilobytes on Linux.
    Ok((ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_of_a_child_reflects_what_it_touched() {
        // `head -c` of 48 MiB into a shell variable would be shell-specific;
        // python is not guaranteed either, so use `dd` with a 40 MiB block buffer.
        let (status, rss) = run_with_peak_rss(Command::new("dd").args([
            "if=/dev/zero",
            "of=/dev/null",
            "bs=40M",
            "count=1",
            "status=none",
        ]))
        .unwrap();
        assert!(status.success());
        assert!(rss >= 40 << 20, "dd with a 40 MiB buffer peaked at {rss} bytes");
        let (_, small) = run_with_peak_rss(&mut Command::new("true")).unwrap();
        assert!(small < 20 << 20, "`true` peaked at {small} bytes");
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
