//! BloatProbe.arena_stats: malloc_info parsed, one entry per arena, with process totals.

use super::allocator::{live, stats_hash};
use super::errors::{io_error, probe_error, ProbeClass};
use super::Fields;
use crate::allocator::{self, Kind};
use crate::malloc_info::{self, ArenaInfo};
use crate::{glibc, procfs};
use magnus::{Error, RHash, Ruby};

pub fn arena_stats(ruby: &Ruby) -> Result<RHash, Error> {
    let rss = procfs::memory().map_err(|e| io_error(ruby, "reading /proc/self/statm", e))?.rss;
    let live = live();
    let fields = Fields::new(ruby);
    fields.set("allocator", ruby.to_symbol(live.kind.name()))?;
    fields.set("allocator_version", live.version.as_str())?;
    fields.set("rss", rss)?;
    if live.kind != Kind::Glibc {
        // glibc's arenas exist but serve nothing: say so rather than report zeros.
        let jemalloc = match allocator::preloaded_jemalloc_stats() {
            Some(Ok(stats)) => Some(stats_hash(ruby, &stats, "preloaded", &live.version)?),
            _ => None,
        };
        fields.set("jemalloc", jemalloc)?;
        for name in ["arena_count", "system", "in_use", "free", "mmap_count", "mmap_bytes", "arenas"] {
            fields.set(name, ())?;
        }
        return Ok(fields.into_hash());
    }
    fields.set("jemalloc", ())?;
    let xml = glibc::malloc_info_xml().map_err(|e| io_error(ruby, "malloc_info", e))?;
    let info = malloc_info::parse(&xml).map_err(|e| probe_error(ruby, ProbeClass::Error, e.to_string()))?;
    // Pushed straight into a Ruby Array: hashes parked in a Rust Vec would be invisible
    // to Ruby's GC, which could free them before they are attached.
    let arenas = ruby.ary_new_capa(info.arenas.len());
    for arena in &info.arenas {
        arenas.push(arena_hash(ruby, arena)?)?;
    }
    fields.set("arena_count", info.arenas.len())?;
    fields.set("system", info.system_bytes())?;
    fields.set("in_use", info.in_use_bytes())?;
    fields.set("free", info.free_bytes())?;
    fields.set("mmap_count", info.mmap_count)?;
    fields.set("mmap_bytes", info.mmap_bytes)?;
    fields.set("arenas", arenas)?;
    Ok(fields.into_hash())
}

fn arena_hash(ruby: &Ruby, arena: &ArenaInfo) -> Result<RHash, Error> {
    let fields = Fields::new(ruby);
    fields.set("index", arena.index)?;
    fields.set("system", arena.system_current)?;
    fields.set("system_max", arena.system_max)?;
    fields.set("in_use", arena.in_use_bytes())?;
    fields.set("free", arena.free_bytes())?;
    fields.set("fast_count", arena.fast_count)?;
    fields.set("fast_bytes", arena.fast_bytes)?;
    fields.set("rest_count", arena.rest_count)?;
    fields.set("rest_bytes", arena.rest_bytes)?;
    fields.set("aspace", arena.aspace_total)?;
    fields.set("aspace_mprotect", arena.aspace_mprotect)?;
    fields.set("subheaps", arena.subheaps)?;
    fields.set("trimmable", arena.trimmable(procfs::page_size()))?;
    Ok(fields.into_hash())
}
