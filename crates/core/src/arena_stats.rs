//! BloatProbe.arena_stats, the headline reading: malloc_info parsed, one entry per arena,
//! with the process totals; under another allocator, what that allocator tells instead.

use crate::allocator::{self, Allocator, JemallocStats, Kind};
use crate::malloc_info::{self, Arena, MallocInfo};
use crate::reading;
use crate::schema::Unit::{Bytes, Count, Name, Reading, Readings, Text};
use crate::{glibc, procfs};

reading! {
    /// glibc's arenas as malloc_info reports them, one entry each, with their totals and
    /// the chunks glibc mmapped outside them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GlibcArenas as "ArenaStats::Glibc" {
        arena_count: u64 => Count,
        system: u64 => Bytes,
        in_use: u64 => Bytes,
        free: u64 => Bytes,
        mmap_count: u64 => Count,
        mmap_bytes: u64 => Bytes,
        arenas: Vec<Arena> => Readings(&Arena::SCHEMA),
    }
}

reading! {
    /// What the allocator serving the process holds: glibc's arenas, or jemalloc's
    /// statistics. `glibc` is None under another allocator (its arenas exist but serve
    /// nothing, and zeros would read as real figures); both are None under tcmalloc or
    /// mimalloc, which bloat_probe cannot read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ArenaStats as "ArenaStats" {
        allocator: Kind => Name,
        allocator_version: String => Text,
        rss: u64 => Bytes,
        glibc: Option<GlibcArenas> => Reading(&GlibcArenas::SCHEMA),
        jemalloc: Option<JemallocStats> => Reading(&JemallocStats::SCHEMA),
    }
}

/// Reads the process's allocator: `live` is what `allocator::detect` found.
pub fn read(live: &Allocator) -> Result<ArenaStats, String> {
    let rss = procfs::memory().map_err(|e| format!("reading /proc/self/statm: {e}"))?.rss;
    let mut stats =
        ArenaStats { allocator: live.name, allocator_version: live.version.clone(), rss, glibc: None, jemalloc: None };
    if live.name != Kind::Glibc {
        // A jemalloc whose statistics fail to read still has its RSS shown.
        stats.jemalloc = allocator::preloaded_jemalloc_stats().and_then(Result::ok);
        return Ok(stats);
    }
    let xml = glibc::malloc_info_xml().map_err(|e| format!("malloc_info: {e}"))?;
    let info = malloc_info::parse(&xml).map_err(|e| e.to_string())?;
    stats.glibc = Some(GlibcArenas::of(&info, procfs::page_size()));
    Ok(stats)
}

impl GlibcArenas {
    /// malloc_info's figures (read by glibc, or from outside), each arena summed up with
    /// `page` sizing its trim estimate.
    pub fn of(info: &MallocInfo, page: u64) -> GlibcArenas {
        GlibcArenas {
            arena_count: info.arenas.len() as u64,
            system: info.system_bytes(),
            in_use: info.in_use_bytes(),
            free: info.free_bytes(),
            mmap_count: info.mmap_count,
            mmap_bytes: info.mmap_bytes,
            arenas: info.arenas.iter().map(|arena| arena.summary(page)).collect(),
        }
    }
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
        let glibc = stats.glibc.as_ref().expect("glibc's arenas");
        let between = |value: u64, a: usize, b: usize| {
            let (a, b) = (a as u64, b as u64);
            value + slack >= a.min(b) && value <= a.max(b) + slack
        };
        assert!(between(glibc.system, before.arena, after.arena), "{} {before:?} {after:?}", glibc.system);
        assert!(between(glibc.in_use, before.uordblks, after.uordblks), "{} {before:?} {after:?}", glibc.in_use);
        assert!(between(glibc.free, before.fordblks, after.fordblks), "{} {before:?} {after:?}", glibc.free);
        assert!(stats.jemalloc.is_none());
        assert!(glibc.in_use >= 32 << 20, "{}", glibc.in_use);
        drop(std::hint::black_box(held));
    }
}
