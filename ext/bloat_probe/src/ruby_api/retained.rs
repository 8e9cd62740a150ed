//! BloatProbe::Retained: the blocks a churn call kept, freed by #release or by the GC.

use bloat_probe_core::workload::{ChurnAllocator, RetainedBlocks};
use magnus::{method, prelude::*, Error, RModule, Ruby, Symbol};
use std::sync::{Mutex, MutexGuard};

#[magnus::wrap(class = "BloatProbe::Retained", free_immediately, size)]
pub struct Retained {
    blocks: Mutex<Option<RetainedBlocks>>,
    allocator: ChurnAllocator,
    count: usize,
    bytes: usize,
}

impl Retained {
    pub fn new(blocks: RetainedBlocks, allocator: ChurnAllocator) -> Self {
        let (count, bytes) = (blocks.count(), blocks.bytes());
        Retained { blocks: Mutex::new(Some(blocks)), allocator, count, bytes }
    }

    fn held(&self) -> MutexGuard<'_, Option<RetainedBlocks>> {
        // A panic cannot leave the Option half-written, so a poisoned lock is still sound.
        self.blocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Frees the blocks now; returns the bytes freed (0 when already released).
    fn release(&self) -> usize {
        self.held().take().map_or(0, |blocks| blocks.bytes())
    }

    fn is_released(&self) -> bool {
        self.held().is_none()
    }

    fn allocator(ruby: &Ruby, rb_self: &Self) -> Symbol {
        ruby.to_symbol(rb_self.allocator.name())
    }

    fn count(&self) -> usize {
        self.count
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn inspect(&self) -> String {
        let state = if self.is_released() { "released" } else { "held" };
        format!(
            "#<BloatProbe::Retained {} blocks, {} bytes, {state}, allocator: {}>",
            self.count,
            self.bytes,
            self.allocator.name()
        )
    }
}

pub fn define(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Retained", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_method("release", method!(Retained::release, 0))?;
    class.define_method("released?", method!(Retained::is_released, 0))?;
    class.define_method("count", method!(Retained::count, 0))?;
    class.define_method("bytes", method!(Retained::bytes, 0))?;
    class.define_method("allocator", method!(Retained::allocator, 0))?;
    class.define_method("inspect", method!(Retained::inspect, 0))?;
    class.define_method("to_s", method!(Retained::inspect, 0))?;
    Ok(())
}
