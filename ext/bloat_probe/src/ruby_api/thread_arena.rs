//! BloatProbe.thread_arena: the calling thread's glibc arena, read cheaply.

use super::allocator::live;
use super::fields::to_hash;
use bloat_probe_core::thread_arena;
use magnus::{Error, RArray, RHash, Ruby};

pub fn thread_arena(ruby: &Ruby) -> Result<RHash, Error> {
    to_hash(ruby, &thread_arena::read(live()))
}

/// [index, id, highest system bytes] of the calling thread's arena, or nil: what the
/// attribution middleware reads before and after each request, without building a Hash.
pub fn thread_arena_mark(ruby: &Ruby) -> Result<Option<RArray>, Error> {
    let reading = thread_arena::read(live());
    match (reading.index, reading.id, reading.system_max) {
        (Some(index), Some(id), Some(max)) => {
            let mark = ruby.ary_new_capa(3);
            mark.push(index)?;
            mark.push(id)?;
            mark.push(max)?;
            Ok(Some(mark))
        }
        _ => Ok(None),
    }
}
