//! BloatProbe.memory: process memory from /proc/self.

use super::errors::io_error;
use super::Fields;
use crate::procfs;
use magnus::{Error, RHash, Ruby};

/// `detail`: also read swap and the arena heap mappings, which cost ~20× more.
pub fn memory(ruby: &Ruby, detail: bool) -> Result<RHash, Error> {
    let m = procfs::memory().map_err(|e| io_error(ruby, "reading /proc/self/statm", e))?;
    let fields = Fields::new(ruby);
    fields.set("rss", m.rss)?;
    fields.set("anon", m.anon)?;
    fields.set("file", m.file)?;
    if detail {
        fields.set("swap", procfs::swap().map_err(|e| io_error(ruby, "reading /proc/self/status", e))?)?;
        let heaps = procfs::arena_heap_mappings().map_err(|e| io_error(ruby, "reading /proc/self/maps", e))?;
        fields.set("heap_mappings", heaps)?;
    }
    Ok(fields.into_hash())
}
