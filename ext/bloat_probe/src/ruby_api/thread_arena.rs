//! BloatProbe.thread_arena: the calling thread's glibc arena, read cheaply.

use super::allocator::live;
use super::fields::to_hash;
use bloat_probe_core::thread_arena;
use magnus::{Error, RHash, Ruby};

pub fn thread_arena(ruby: &Ruby) -> Result<RHash, Error> {
    to_hash(ruby, &thread_arena::read(live()))
}
