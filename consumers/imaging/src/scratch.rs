//! Reuse of the large per-image buffers (inflated PNG data, decoded pixels)
//! between images on the same thread. A fresh multi-megabyte allocation is
//! handed out by the kernel as untouched pages, and faulting them in costs
//! about a third of a 2 MP PNG decode; a warm consumer keeps a few buffers.

use std::cell::RefCell;

use fast_image_resize::Resizer;

/// Buffers larger than this are returned to the allocator, so one huge image
/// does not pin its memory for the life of the thread.
const KEEP_MAX_BYTES: usize = 32 << 20;
/// One image holds up to ~8 at once: source planes, a variant's planes, the
/// JPEG output buffer.
const KEEP_COUNT: usize = 12;
/// What one thread may keep in all: a 2 MP PNG needs ~17 MB, a 12 MP JPEG ~3 MB.
/// (The consumer's spawn_blocking threads exit when idle, dropping their pool.)
const KEEP_TOTAL_BYTES: usize = 48 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// The resizer keeps its intermediate (horizontal pass) buffer between calls.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Runs `f` with this thread's resizer.
pub fn with_resizer<R>(f: impl FnOnce(&mut Resizer) -> R) -> R {
    RESIZER.with(|r| f(&mut r.borrow_mut()))
}

/// A zero-filled buffer of `len` bytes, reusing a kept one when it fits.
pub fn zeroed(len: usize) -> Vec<u8> {
    let mut buf = POOL
        .with(|pool| {
            let mut pool = pool.borrow_mut();
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| pool.swap_remove(i))
        })
        .unwrap_or_default();
    buf.clear();
    buf.resize(len, 0);
    buf
}

/// Gives a buffer back for reuse by later images on this thread.
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_MAX_BYTES {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.push(buf);
        // Drop the smallest buffers until within both limits.
        while pool.len() > KEEP_COUNT
            || pool.iter().map(Vec::capacity).sum::<usize>() > KEEP_TOTAL_BYTES
        {
            let smallest = (0..pool.len())
                .min_by_key(|&i| pool[i].capacity())
                .expect("pool is not empty");
            pool.swap_remove(smallest);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_reused() {
        let mut a = zeroed(1000);
        a.iter_mut().for_each(|b| *b = 7);
        let ptr = a.as_ptr();
        recycle(a);
        let b = zeroed(900);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is reused");
        assert!(b.iter().all(|&v| v == 0) && b.len() == 900);
        recycle(vec![0u8; KEEP_MAX_BYTES + 1]);
        assert!(zeroed(KEEP_MAX_BYTES + 1).capacity() > KEEP_MAX_BYTES);
        for _ in 0..10 {
            recycle(vec![0u8; 20 << 20]);
        }
        let kept: usize = POOL.with(|p| p.borrow().iter().map(Vec::capacity).sum());
        assert!(kept <= KEEP_TOTAL_BYTES, "pool keeps {kept} bytes");
    }
}
