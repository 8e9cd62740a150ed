//! Where churn's blocks come from, and how they are made resident.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;
use tikv_jemallocator::Jemalloc;

/// Where the blocks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnAllocator {
    /// The process's malloc (glibc, or whatever LD_PRELOAD put in its place).
    System,
    /// The jemalloc bundled in this library (churn cannot reach a preloaded one apart from
    /// the process's malloc; `JemallocSource::Bundled` names the same one's statistics).
    Jemalloc,
}

impl ChurnAllocator {
    pub const ALL: [ChurnAllocator; 2] = [ChurnAllocator::System, ChurnAllocator::Jemalloc];

    /// As Ruby names it: `allocator: :system` or `:jemalloc`.
    pub fn name(self) -> &'static str {
        match self {
            ChurnAllocator::System => "system",
            ChurnAllocator::Jemalloc => "jemalloc",
        }
    }

    pub(super) fn alloc(self, size: usize) -> Option<NonNull<u8>> {
        let ptr = match self {
            // SAFETY: malloc accepts any size and returns null on failure.
            ChurnAllocator::System => unsafe { libc::malloc(size) }.cast::<u8>(),
            // SAFETY: the layout has a non-zero size (validated: min_size >= 1).
            ChurnAllocator::Jemalloc => unsafe { Jemalloc.alloc(block_layout(size)?) },
        };
        NonNull::new(ptr)
    }

    /// # Safety
    /// `ptr` must come from `self.alloc(size)` and not have been freed.
    pub(super) unsafe fn free(self, ptr: NonNull<u8>, size: usize) {
        match self {
            ChurnAllocator::System => libc::free(ptr.as_ptr().cast()),
            ChurnAllocator::Jemalloc => {
                if let Some(layout) = block_layout(size) {
                    Jemalloc.dealloc(ptr.as_ptr(), layout)
                }
            }
        }
    }
}

fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, 16).ok()
}

/// Writes one byte in every page of the block and its last byte: that makes the block
/// resident as a filled buffer would be, without spending the time of filling it, so the
/// workload measures the allocator rather than memory bandwidth.
///
/// # Safety
/// `ptr` must point to a block of at least `size` writable bytes, and `size` must be at
/// least 1.
pub(super) unsafe fn touch(ptr: NonNull<u8>, size: usize, value: u8) {
    const PAGE: usize = 4096;
    for offset in (0..size).step_by(PAGE).chain(std::iter::once(size - 1)) {
        // SAFETY: offset < size, and the caller promised `size` writable bytes at ptr.
        unsafe { ptr.as_ptr().add(offset).write_volatile(value) };
    }
}
