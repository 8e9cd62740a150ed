//! BloatProbe.malloc_stats: what glibc's malloc_stats() prints, as text and parsed.

use super::allocator::require_glibc;
use super::errors::{io_error, probe_error, ProbeClass};
use super::Fields;
use crate::{glibc, malloc_stats};
use magnus::{Error, RHash, Ruby};

pub fn malloc_stats(ruby: &Ruby) -> Result<RHash, Error> {
    require_glibc(ruby, "malloc_stats")?;
    let text = glibc::malloc_stats_text().map_err(|e| io_error(ruby, "malloc_stats", e))?;
    let stats = malloc_stats::parse(&text).map_err(|e| probe_error(ruby, ProbeClass::Error, e.to_string()))?;
    // Straight into a Ruby Array, where the GC sees each hash (see arena_stats).
    let arenas = ruby.ary_new_capa(stats.arenas.len());
    for arena in &stats.arenas {
        let fields = Fields::new(ruby);
        fields.set("index", arena.index)?;
        fields.set("system", arena.system_bytes)?;
        fields.set("in_use", arena.in_use_bytes)?;
        arenas.push(fields.into_hash())?;
    }
    let fields = Fields::new(ruby);
    fields.set("text", text)?;
    fields.set("arenas", arenas)?;
    fields.set("system", stats.total_system_bytes)?;
    fields.set("in_use", stats.total_in_use_bytes)?;
    fields.set("max_mmap_regions", stats.max_mmap_regions)?;
    fields.set("max_mmap_bytes", stats.max_mmap_bytes)?;
    Ok(fields.into_hash())
}
