//! BloatProbe.memory: process memory from /proc/self.

use super::errors::io_error;
use crate::procfs;
use magnus::{Error, RArray, Ruby};

/// [rss, anon, file, swap, heap_mappings]: an Array, not a Hash, because this is read on
/// every request and BloatProbe::Memory is built from it positionally. `detail` adds
/// swap and the arena heap mappings, which cost about 75× more.
pub fn memory(ruby: &Ruby, detail: bool) -> Result<RArray, Error> {
    let m = procfs::memory().map_err(|e| io_error(ruby, "reading /proc/self/statm", e))?;
    let (swap, heaps) = if detail {
        let swap = procfs::swap().map_err(|e| io_error(ruby, "reading /proc/self/status", e))?;
        let heaps = procfs::arena_heap_mappings().map_err(|e| io_error(ruby, "reading /proc/self/maps", e))?;
        (Some(swap), Some(heaps))
    } else {
        (None, None)
    };
    let values = ruby.ary_new_capa(5);
    values.push(m.rss)?;
    values.push(m.anon)?;
    values.push(m.file)?;
    values.push(swap)?;
    values.push(heaps)?;
    Ok(values)
}
