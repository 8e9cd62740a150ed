//! BloatProbe.memory: process memory from /proc/self.

use super::errors::io_error;
use crate::procfs;
use magnus::{Error, RArray, Ruby};

/// [rss, anon, file, swap, heap_mappings, pss, uss, arena_resident]: an Array, not a
/// Hash, because this is read on every request and BloatProbe::Memory is built from it
/// positionally. `detail` fills the last five, which cost far more (see procfs).
pub fn memory(ruby: &Ruby, detail: bool) -> Result<RArray, Error> {
    let m = procfs::memory().map_err(|e| io_error(ruby, "reading /proc/self/statm", e))?;
    let detail = if detail {
        Some(procfs::detail().map_err(|e| io_error(ruby, "reading /proc/self/smaps", e))?)
    } else {
        None
    };
    let values = ruby.ary_new_capa(8);
    values.push(m.rss)?;
    values.push(m.anon)?;
    values.push(m.file)?;
    values.push(detail.map(|d| d.swap))?;
    values.push(detail.map(|d| d.heap_mappings))?;
    values.push(detail.map(|d| d.pss))?;
    values.push(detail.map(|d| d.uss))?;
    values.push(detail.map(|d| d.arena_resident))?;
    Ok(values)
}
