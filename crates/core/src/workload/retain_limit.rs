//! The retain limit: what churn may hold at once across the process, counted as it
//! allocates, and the blocks it keeps.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::allocator::ChurnAllocator;

pub const DEFAULT_RETAIN_LIMIT: usize = 2 << 30;

static RETAINED_BYTES: AtomicUsize = AtomicUsize::new(0);
static RETAIN_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_RETAIN_LIMIT);

/// Bytes that churn may hold at once across the process, so that a typo in a size does
/// not get the process killed by the OOM killer.
pub fn retain_limit() -> usize {
    RETAIN_LIMIT.load(Ordering::Relaxed)
}

pub fn set_retain_limit(bytes: usize) {
    RETAIN_LIMIT.store(bytes, Ordering::Relaxed);
}

/// Bytes held right now by every live `RetainedBlocks`.
pub fn retained_bytes() -> usize {
    RETAINED_BYTES.load(Ordering::Relaxed)
}

/// The part of RETAINED_BYTES that completed calls handed to their callers. A forked child
/// has its copies of those, but none of the threads that were churning at the fork: what
/// they had reserved would stay counted in the child for good.
static RESULT_BYTES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn forget_running_churns() {
    RETAINED_BYTES.store(RESULT_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

pub(super) fn watch_forks() {
    static WATCHED: OnceLock<()> = OnceLock::new();
    WATCHED.get_or_init(|| {
        // SAFETY: the child handler only stores to atomics, which is safe in a forked
        // child. Should registration fail, a child keeps the parent's count, as before.
        unsafe { libc::pthread_atfork(None, None, Some(forget_running_churns)) };
    });
}

/// Reserves `size` bytes against the process-wide limit; false when over it.
fn reserve(size: usize) -> bool {
    let limit = retain_limit();
    RETAINED_BYTES
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            held.checked_add(size).filter(|total| *total <= limit)
        })
        .is_ok()
}

/// One thread's share of the limit, reserved from the global count a slice at a time:
/// an atomic update per allocation would make two threads fight over one cache line.
pub(super) struct Reservation {
    credit: usize,
}

impl Reservation {
    pub(super) fn new() -> Self {
        Reservation { credit: 0 }
    }

    const SLICE: usize = 4 << 20;

    pub(super) fn take(&mut self, size: usize) -> bool {
        if self.credit < size {
            let want = size.max(Self::SLICE);
            // Near the limit a whole slice may not fit where this one block still does.
            let granted = if reserve(want) {
                want
            } else if reserve(size) {
                size
            } else {
                return false;
            };
            self.credit += granted;
        }
        self.credit -= size;
        true
    }

    /// Freed bytes stay reserved, as credit for the next blocks.
    pub(super) fn give_back(&mut self, size: usize) {
        self.credit += size;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        RETAINED_BYTES.fetch_sub(self.credit, Ordering::Relaxed);
    }
}

/// Blocks kept by a churn call, freed on drop.
#[derive(Debug)]
pub struct RetainedBlocks {
    allocator: ChurnAllocator,
    blocks: Vec<(NonNull<u8>, usize)>,
    bytes: usize,
    /// Handed to a caller as a call's result (counted in RESULT_BYTES too).
    is_result: bool,
}

// SAFETY: the blocks are heap allocations owned only by this value; malloc's free and
// jemalloc's dealloc may be called from any thread.
unsafe impl Send for RetainedBlocks {}

impl RetainedBlocks {
    pub fn empty(allocator: ChurnAllocator) -> Self {
        RetainedBlocks { allocator, blocks: Vec::new(), bytes: 0, is_result: false }
    }

    pub fn count(&self) -> usize {
        self.blocks.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn push(&mut self, ptr: NonNull<u8>, size: usize) {
        self.blocks.push((ptr, size));
        self.bytes += size;
    }

    /// Puts a block in `slot`'s place and hands back the one that was there.
    pub(super) fn replace(&mut self, slot: usize, ptr: NonNull<u8>, size: usize) -> (NonNull<u8>, usize) {
        let old = std::mem::replace(&mut self.blocks[slot], (ptr, size));
        self.bytes = self.bytes + size - old.1;
        old
    }

    pub(super) fn mark_result(&mut self) {
        RESULT_BYTES.fetch_add(self.bytes, Ordering::Relaxed);
        self.is_result = true;
    }

    pub(super) fn absorb(&mut self, mut other: RetainedBlocks) {
        self.bytes += other.bytes;
        self.blocks.append(&mut other.blocks);
        other.bytes = 0;
    }
}

impl Drop for RetainedBlocks {
    fn drop(&mut self) {
        for &(ptr, size) in &self.blocks {
            // SAFETY: every block came from self.allocator.alloc(size) and is freed once here.
            unsafe { self.allocator.free(ptr, size) };
        }
        RETAINED_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        if self.is_result {
            RESULT_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}
