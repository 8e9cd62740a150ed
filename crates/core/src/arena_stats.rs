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
    fn a_glibc_process_gets_every_arena_with_the_totals_mallinfo2_reports() {
        // mallinfo2 walks the same arenas apart from malloc_info; other tests allocate
        // meanwhile, so each total falls between its readings before and after, give or take.
        // 32 MiB held in blocks under the mmap threshold make in use and free tell apart.
        let held: Vec<Vec<u8>> = (0..512).map(|_| vec![1u8; 64 << 10]).collect();
        let before = glibc::mallinfo();
        let stats = read(&allocator::detect()).expect("arena_stats");
        let after = glibc::mallinfo();
        let slack = 4 << 20;
        let between = |value: Option<u64>, a: usize, b: usize| {
            let (value, a, b) = (value.expect("a glibc figure"), a as u64, b as u64);
            value + slack >= a.min(b) && value <= a.max(b) + slack
        };
        assert!(between(stats.system, before.arena, after.arena), "{:?} {before:?} {after:?}", stats.system);
        assert!(between(stats.in_use, before.uordblks, after.uordblks), "{:?} {before:?} {after:?}", stats.in_use);
        assert!(between(stats.free, before.fordblks, after.fordblks), "{:?} {before:?} {after:?}", stats.free);
        assert!(stats.jemalloc.is_none());
        assert!(stats.in_use >= Some(32 << 20), "{:?}", stats.in_use);
        drop(std::hint::black_box(held));
    }
}
