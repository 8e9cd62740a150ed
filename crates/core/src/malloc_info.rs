//! Parses the XML of glibc's `malloc_info(0, …)` into one record per arena plus the
//! process totals. The format is documented in glibc's malloc/malloc.c (__malloc_info).

use std::borrow::Cow;

use crate::parse_error::ParseError;
use crate::reading;
use crate::schema::Unit::{Bytes, Count};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One `<heap nr="N">` element: an arena.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArenaInfo {
    pub index: u64,
    pub fast_count: u64,
    pub fast_bytes: u64,
    /// Free chunks in the other bins, including the arena's top chunk.
    pub rest_count: u64,
    pub rest_bytes: u64,
    pub system_current: u64,
    pub system_max: u64,
    pub aspace_total: u64,
    pub aspace_mprotect: u64,
    /// Number of 64 MiB heaps the arena spans; newer glibc reports it, older omits it.
    pub subheaps: Option<u64>,
    /// The free chunks by size class (`<size>` and `<unsorted>`).
    pub free_chunks: Vec<FreeChunks>,
}

/// One `<size from to total count>` line: `count` free chunks of one size class (its
/// bounds are not kept: the trim estimate needs only the sum and the count). glibc sums the
/// chunks' raw size words, so `total` includes up to 7 flag bits per chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FreeChunks {
    pub total: u64,
    pub count: u64,
}

/// A free chunk's own header and list links (struct malloc_chunk, 64-bit): malloc_trim
/// leaves them in place and releases the whole pages after them.
const CHUNK_HEADER: u64 = 48;

impl ArenaInfo {
    pub fn free_bytes(&self) -> u64 {
        self.fast_bytes + self.rest_bytes
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.system_current.saturating_sub(self.free_bytes())
    }

    /// What malloc_trim(0) would release here, estimated from the free chunks: it
    /// releases the whole pages inside each free chunk past its header. For a chunk of
    /// s bytes at a random alignment that is s − header − one page on average (half a page
    /// lost at each end), and nothing for chunks of a page or less. The main arena (0) also
    /// gives back its top chunk (glibc's systrim); other arenas' tops are trimmed on free
    /// already and malloc_trim leaves them. Pages released before still count as free
    /// here, so a caller caps the sum by what is resident (BloatProbe.diagnose does).
    pub fn trimmable(&self, page: u64) -> u64 {
        let chunks: u64 =
            self.free_chunks.iter().map(|c| c.total.saturating_sub(c.count * (CHUNK_HEADER + page))).sum();
        let top = if self.index == 0 {
            let binned: u64 = self.free_chunks.iter().map(|c| c.total).sum();
            self.free_bytes().saturating_sub(binned).saturating_sub(page)
        } else {
            0
        };
        chunks + top
    }
}

reading! {
    /// One arena as BloatProbe.arena_stats shows it: malloc_info's figures, what is in use
    /// and free, and what a trim would release.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Arena as "Arena" {
        index: u64 => Count,
        system: u64 => Bytes,
        system_max: u64 => Bytes,
        in_use: u64 => Bytes,
        free: u64 => Bytes,
        fast_count: u64 => Count,
        fast_bytes: u64 => Bytes,
        rest_count: u64 => Count,
        rest_bytes: u64 => Bytes,
        aspace: u64 => Bytes,
        aspace_mprotect: u64 => Bytes,
        subheaps: Option<u64> => Count,
        trimmable: u64 => Bytes,
    }
}

impl ArenaInfo {
    /// The arena as Ruby sees it; `page` sizes the trim estimate.
    pub fn summary(&self, page: u64) -> Arena {
        Arena {
            index: self.index,
            system: self.system_current,
            system_max: self.system_max,
            in_use: self.in_use_bytes(),
            free: self.free_bytes(),
            fast_count: self.fast_count,
            fast_bytes: self.fast_bytes,
            rest_count: self.rest_count,
            rest_bytes: self.rest_bytes,
            aspace: self.aspace_total,
            aspace_mprotect: self.aspace_mprotect,
            subheaps: self.subheaps,
            trimmable: self.trimmable(page),
        }
    }
}

/// The whole report: the arenas, and the chunks glibc mmapped outside any arena.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MallocInfo {
    pub arenas: Vec<ArenaInfo>,
    pub mmap_count: u64,
    pub mmap_bytes: u64,
    /// glibc's own closing totals over all arenas, kept to cross-check the arenas.
    pub reported_free_bytes: u64,
    pub reported_system_bytes: u64,
}

impl MallocInfo {
    pub fn system_bytes(&self) -> u64 {
        self.arenas.iter().map(|a| a.system_current).sum()
    }

    pub fn free_bytes(&self) -> u64 {
        self.arenas.iter().map(ArenaInfo::free_bytes).sum()
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.arenas.iter().map(ArenaInfo::in_use_bytes).sum()
    }
}

fn error(detail: impl Into<String>) -> ParseError {
    ParseError { report: "malloc_info", detail: detail.into() }
}

pub fn parse(xml: &str) -> Result<MallocInfo, ParseError> {
    let mut reader = Reader::from_str(xml);
    let mut info = MallocInfo::default();
    let mut current: Option<ArenaInfo> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event().map_err(|e| error(e.to_string()))? {
            Event::Start(tag) | Event::Empty(tag) => match tag.name().as_ref() {
                b"malloc" => saw_root = true,
                b"size" | b"unsorted" => {
                    let arena = current.as_mut().ok_or_else(|| error("<size> outside <heap>"))?;
                    arena.free_chunks.push(FreeChunks { total: attr(&tag, b"total")?, count: attr(&tag, b"count")? });
                }
                b"heap" => current = Some(ArenaInfo { index: attr(&tag, b"nr")?, ..Default::default() }),
                b"total" | b"system" | b"aspace" => record(&tag, current.as_mut(), &mut info)?,
                _ => {}
            },
            Event::End(tag) if tag.name().as_ref() == b"heap" => {
                let arena = current.take().ok_or_else(|| error("</heap> without <heap>"))?;
                info.arenas.push(arena);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(error("no <malloc> element"));
    }
    if current.is_some() {
        return Err(error("unterminated <heap>"));
    }
    Ok(info)
}

/// Files one `<total>`, `<system>` or `<aspace>` element into the arena being read, or
/// into the process totals when outside any `<heap>`.
fn record(tag: &BytesStart, arena: Option<&mut ArenaInfo>, info: &mut MallocInfo) -> Result<(), ParseError> {
    let kind = attr_value(tag, b"type")?;
    let size: u64 = attr(tag, b"size")?;
    match (tag.name().as_ref(), kind.as_ref(), arena) {
        (b"total", b"fast", Some(a)) => (a.fast_count, a.fast_bytes) = (attr(tag, b"count")?, size),
        (b"total", b"rest", Some(a)) => (a.rest_count, a.rest_bytes) = (attr(tag, b"count")?, size),
        (b"system", b"current", Some(a)) => a.system_current = size,
        (b"system", b"max", Some(a)) => a.system_max = size,
        (b"aspace", b"total", Some(a)) => a.aspace_total = size,
        (b"aspace", b"mprotect", Some(a)) => a.aspace_mprotect = size,
        (b"aspace", b"subheaps", Some(a)) => a.subheaps = Some(size),
        (b"total", b"mmap", None) => (info.mmap_count, info.mmap_bytes) = (attr(tag, b"count")?, size),
        (b"total", b"fast" | b"rest", None) => info.reported_free_bytes += size,
        (b"system", b"current", None) => info.reported_system_bytes = size,
        _ => {}
    }
    Ok(())
}

fn attr_value<'a>(tag: &'a BytesStart, name: &[u8]) -> Result<Cow<'a, [u8]>, ParseError> {
    match tag.try_get_attribute(name).map_err(|e| error(e.to_string()))? {
        Some(found) => Ok(found.value),
        None => Err(error(format!("<{}> lacks {}", lossy(tag.name().as_ref()), lossy(name)))),
    }
}

fn attr(tag: &BytesStart, name: &[u8]) -> Result<u64, ParseError> {
    let value = attr_value(tag, name)?;
    std::str::from_utf8(&value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| error(format!("{}={:?} is not a number", lossy(name), lossy(&value))))
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANY: &str = include_str!("../tests/fixtures/malloc_info_16_arenas.xml");
    const MAIN_ONLY: &str = include_str!("../tests/fixtures/malloc_info_main_only.xml");

    #[test]
    fn reads_every_arena_of_a_busy_process() {
        let info = parse(MANY).expect("parse");
        assert_eq!(info.arenas.len(), 16);
        let indexes: Vec<u64> = info.arenas.iter().map(|a| a.index).collect();
        assert_eq!(indexes, (0..16).collect::<Vec<u64>>());
        let last = &info.arenas[15];
        assert_eq!(last.rest_count, 1934);
        assert_eq!(last.rest_bytes, 32_573_965);
        assert_eq!(last.system_current, 65_675_264);
        assert_eq!(last.subheaps, Some(1));
        assert_eq!(last.in_use_bytes(), 65_675_264 - 32_573_965);
        assert_eq!((info.mmap_count, info.mmap_bytes), (1, 41_947_136));
    }

    #[test]
    fn arena_sums_match_the_totals_glibc_printed() {
        let info = parse(MANY).expect("parse");
        assert_eq!(info.reported_system_bytes, 1_232_252_928);
        assert_eq!(info.system_bytes(), info.reported_system_bytes);
        assert_eq!(info.free_bytes(), info.reported_free_bytes);
    }

    #[test]
    fn trim_estimate_counts_whole_pages_inside_free_chunks() {
        let chunks = |total, count| FreeChunks { total, count };
        let arena = |index, free_chunks: Vec<FreeChunks>, rest_bytes| ArenaInfo {
            index,
            rest_bytes,
            system_current: 64 << 20,
            free_chunks,
            ..Default::default()
        };
        // Small chunks release nothing; 10 chunks of 16 KiB release 12 KiB - 48 B each.
        let small_and_large = vec![chunks(20_000, 10), chunks(163_850, 10)];
        let other = arena(3, small_and_large.clone(), 183_850 + 1_000_000);
        assert_eq!(other.trimmable(4096), 163_850 - 10 * (48 + 4096));
        // The main arena also hands back its top chunk (what is free outside the bins).
        let main = arena(0, small_and_large, 183_850 + 1_000_000);
        assert_eq!(main.trimmable(4096), 163_850 - 10 * (48 + 4096) + 1_000_000 - 4096);
    }

    #[test]
    fn reads_the_free_chunk_histogram() {
        let info = parse(MANY).expect("parse");
        let main = &info.arenas[0];
        assert_eq!(main.free_chunks[0], FreeChunks { total: 4260, count: 4 });
        assert!(info.arenas.iter().all(|a| !a.free_chunks.is_empty()));
        let estimate: u64 = info.arenas.iter().map(|a| a.trimmable(4096)).sum();
        assert!(estimate > 0 && estimate < info.free_bytes(), "{estimate}");
    }

    #[test]
    fn a_single_threaded_process_has_only_the_main_arena() {
        let info = parse(MAIN_ONLY).expect("parse");
        assert_eq!(info.arenas.len(), 1);
        assert_eq!(info.arenas[0].subheaps, None);
        assert_eq!(info.arenas[0].system_current, 135_168);
        assert_eq!(info.arenas[0].free_bytes(), 130_400);
    }

    #[test]
    fn rejects_what_is_not_malloc_info() {
        assert!(parse("").is_err());
        assert!(parse("<malloc version=\"1\"><heap nr=\"0\">").is_err());
        assert!(parse("<malloc><heap nr=\"x\"></heap></malloc>").is_err());
        assert!(parse("<malloc><heap nr=\"0\"><total type=\"rest\" count=\"1\"/></heap></malloc>").is_err());
    }
}
