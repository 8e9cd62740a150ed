//! BloatProbe.arena_stats, the headline reading: malloc_info parsed, one entry per arena,
//! with the process totals; under another allocator, what that allocator tells instead.

use crate::allocator::{self, Allocator, JemallocStats, Kind};
use crate::malloc_info::{self, Arena};
use crate::reading;
use crate::schema::Unit::{Bytes, Count, Name, Reading, Readings, Text};
use crate::{glibc, procfs};

reading! {
    /// The glibc fields are None under another allocator: its arenas exist but serve
    /// nothing, and zeros would read as real figures.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ArenaStats as "ArenaStats" {
        allocator: Kind => Name,
        allocator_version: String => Text,
        rss: u64 => Bytes,
        arena_count: Option<u64> => Count,
        system: Option<u64> => Bytes,
        in_use: Option<u64> => Bytes,
        free: Option<u64> => Bytes,
        mmap_count: Option<u64> => Count,
        mmap_bytes: Option<u64> => Bytes,
        arenas: Option<Vec<Arena>> => Readings(&Arena::SCHEMA),
        jemalloc: Option<JemallocStats> => Reading(&JemallocStats::SCHEMA),
    }
}

/// Reads the process's allocator: `live` is what `allocator::detect` found.
pub fn read(live: &Allocator) -> Result<ArenaStats, String> {
    let rss = procfs::memory().map_err(|e| format!("reading /proc/self/statm: {e}"))?.rss;
    let mut stats = ArenaStats {
        allocator: live.name,
        allocator_version: live.version.clone(),
        rss,
        arena_count: None,
        system: None,
        in_use: None,
        free: None,
        mmap_count: None,
        mmap_bytes: None,
        arenas: None,
        jemalloc: None,
    };
    if live.name != Kind::Glibc {
        // A jemalloc whose statistics fail to read still has its RSS shown.
        stats.jemalloc = allocator::preloaded_jemalloc_stats().and_then(Result::ok);
        return Ok(stats);
    }
    let xml = glibc::malloc_info_xml().map_err(|e| format!("malloc_info: {e}"))?;
    let info = malloc_info::parse(&xml).map_err(|e| e.to_string())?;
    let page = procfs::page_size();
    stats.arena_count = Some(info.arenas.len() as u64);
    stats.system = Some(info.system_bytes());
    stats.in_use = Some(info.in_use_bytes());
    stats.free = Some(info.free_bytes());
    stats.mmap_count = Some(info.mmap_count);
    stats.mmap_bytes = Some(info.mmap_bytes);
    stats.arenas = Some(info.arenas.iter().map(|arena| arena.summary(page)).collect());
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glibc_process_gets_every_arena_and_totals_that_add_up() {
        let stats = read(&allocator::detect()).expect("arena_stats");
        let arenas = stats.arenas.expect("glibc arenas");
        assert_eq!(stats.arena_count, Some(arenas.len() as u64));
        assert_eq!(stats.system, Some(arenas.iter().map(|a| a.system).sum()));
        assert!(arenas.iter().all(|a| a.in_use + a.free == a.system), "{arenas:?}");
        assert!(stats.jemalloc.is_none());
    }
}
