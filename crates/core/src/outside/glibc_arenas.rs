//! glibc's arenas of another process, read from outside: no lock of the target is taken,
//! nothing in it runs, and it never stops. The layout (glibc's malloc/malloc.c and
//! arena.c, 2.35 through 2.41 on 64-bit) is chosen by the target's glibc version and
//! checked before anything is trusted:
//!
//! - A non-main arena's first heap is aligned to 64 MiB and begins with `heap_info`, whose
//!   `ar_ptr` is the arena, placed right after it (heap + 0x30).
//! - `struct malloc_state`'s `next` links every arena in a ring that passes `main_arena`,
//!   which lives in libc's own data; every other member must sit at its heap + 0x30.
//! - A free chunk's size word follows its prev_size; bins are doubly linked lists whose
//!   header is a pseudo-chunk inside the arena; fast bins are singly linked with
//!   safe-linking (glibc ≥ 2.32): the stored link is `next ^ (its own address >> 12)`.
//!
//! The figures are the ones malloc_info prints, computed the same way (raw size words for
//! the bins, the top chunk counted as free), so the trim estimate and the verdict come
//! from the same code as the process's own. The target keeps allocating meanwhile: every
//! pointer followed must lie inside that arena's heaps, every size be sane and every
//! back-link agree; an arena whose lists or header moved under the walk is read again,
//! and after three tries it is marked moving with what was read.

use std::collections::HashSet;
use std::io;
use std::ops::Range;

use super::process_memory::{unmapped, word_in, ProcessMemory};
use crate::malloc_info::{ArenaInfo, FreeChunks};
use crate::procfs::ARENA_HEAP_SIZE;

/// Where glibc keeps what this module reads, in bytes (x86_64 and aarch64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// sizeof(heap_info): where an arena's malloc_state sits in its first heap.
    heap_info_size: u64,
    fastbins: u64,
    top: u64,
    bins: u64,
    next: u64,
    system_mem: u64,
    max_system_mem: u64,
    /// sizeof(struct malloc_state): what one read of an arena's header takes.
    state_size: u64,
    /// struct malloc_par (`mp_`) around its `sbrk_base`, the one field whose value the
    /// maps give away (the start of [heap]): its mmapped-chunk counters, relative to it.
    par_n_mmaps: i64,
    par_max_n_mmaps: i64,
    par_mmapped_mem: i64,
    par_max_mmapped_mem: i64,
}

/// glibc 2.35 through 2.41 (checked on 2.36 and 2.41): heap_info gained `pagesize` in
/// 2.35, which moved the arena to heap + 0x30; malloc_par gained thp_pagesize,
/// hp_pagesize and hp_flags in 2.35 too.
const GLIBC_2_35: Layout = Layout {
    heap_info_size: 0x30,
    fastbins: 16,
    top: 96,
    bins: 112,
    next: 2160,
    system_mem: 2184,
    max_system_mem: 2192,
    state_size: 2200,
    par_n_mmaps: -36,
    par_max_n_mmaps: -28,
    par_mmapped_mem: -16,
    par_max_mmapped_mem: -8,
};
pub const SUPPORTED: &str = "2.35 through 2.41";

const NFASTBINS: u64 = 10;
const NBINS: u64 = 128;
const MINSIZE: u64 = 32;
const ALIGNMENT: u64 = 16;
/// A chunk's size word, and its list links (struct malloc_chunk).
const SIZE: u64 = 8;
const FD: u64 = 16;
const BK: u64 = 24;
const CHUNK_HEAD: usize = 32;
/// heap_info's `prev`, `size` and `mprotect_size`.
const HEAP_PREV: u64 = 8;
const HEAP_SIZE_FIELD: u64 = 16;
const HEAP_MPROTECT: u64 = 24;
/// More arenas than glibc ever makes (8 × 1024 cores): a longer ring has lost its way.
const MAX_ARENAS: usize = 8192;
/// More heaps than one arena can chain (its address space would pass 64 TiB).
const MAX_HEAPS: usize = 1 << 20;
/// Reads of an arena whose lists keep moving before it is shown as moving.
pub const TRIES: usize = 3;

impl Layout {
    /// The layout for a glibc version ("2.36"), None where it is not known.
    pub fn for_version(version: &str) -> Option<Layout> {
        let (major, minor) = version.split_once('.')?;
        let minor: u32 = minor.split('.').next()?.parse().ok()?;
        (major == "2" && (35..=41).contains(&minor)).then_some(GLIBC_2_35)
    }
}

/// Why the arenas could not be read.
#[derive(Debug)]
pub enum Failure {
    /// The target's memory could not be read (gone, no right): the OS's answer.
    Io(io::Error),
    /// What was read does not have glibc's shape: the layout is not trusted.
    Refused(String),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Io(error)
    }
}

/// What the walk found: the arenas in malloc_info's order (main first), which of them
/// moved under every try, and glibc's mmapped chunks where its `mp_` was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arenas {
    pub arenas: Vec<ArenaInfo>,
    pub moving: Vec<u64>,
    /// (count, bytes) of chunks glibc mmapped outside any arena.
    pub mmap: Option<(u64, u64)>,
    pub main_arena: u64,
}

/// The target as far as the arenas are concerned.
pub struct Target<'a> {
    pub memory: &'a ProcessMemory,
    pub layout: Layout,
    /// libc's mappings, first to last, and the anonymous one right after them (its .bss).
    pub libc: Range<u64>,
    /// libc's writable mappings: .data, where main_arena and mp_ live, and .bss.
    pub libc_data: Vec<Range<u64>>,
    /// The brk heap, "[heap]": the main arena's chunks.
    pub brk_heap: Option<Range<u64>>,
    /// Anonymous read-write mappings: where non-main heaps may start.
    pub anonymous: Vec<Range<u64>>,
}

impl Target<'_> {
    /// An arena's first heap, found at a 64 MiB boundary of an anonymous mapping: its
    /// `ar_ptr` points just past its own header.
    pub fn heap_arena(&self) -> Result<Option<u64>, Failure> {
        for range in &self.anonymous {
            let mut heap = range.start.next_multiple_of(ARENA_HEAP_SIZE);
            while heap < range.end {
                match self.memory.word(heap) {
                    Ok(ar_ptr) if ar_ptr == heap + self.layout.heap_info_size => {
                        return Ok(Some(heap + self.layout.heap_info_size))
                    }
                    // Unmapped since maps was read (glibc dropped an empty heap): the next.
                    Err(error) if !unmapped(&error) => return Err(error.into()),
                    _ => {}
                }
                heap += ARENA_HEAP_SIZE;
            }
        }
        Ok(None)
    }

    /// Every arena, main first, from any member of the ring; the layout is checked as it goes.
    pub fn ring_from(&self, start: u64) -> Result<Vec<u64>, Failure> {
        let mut ring = vec![start];
        let mut seen = HashSet::from([start]);
        let mut arena = start;
        loop {
            let next = self.memory.word(arena + self.layout.next)?;
            if next == start {
                break;
            }
            if ring.len() >= MAX_ARENAS || !seen.insert(next) {
                return Err(Failure::Refused(format!(
                    "glibc's list of arenas does not come back to {start:#x} within {} steps",
                    ring.len()
                )));
            }
            ring.push(next);
            arena = next;
        }
        let mains: Vec<usize> = (0..ring.len()).filter(|&i| self.libc.contains(&ring[i])).collect();
        let [main] = mains[..] else {
            return Err(Failure::Refused(format!(
                "{} of the {} arenas found lie in libc's data, where only main_arena should",
                mains.len(),
                ring.len()
            )));
        };
        ring.rotate_left(main);
        for &arena in &ring[1..] {
            let heap = arena.wrapping_sub(self.layout.heap_info_size);
            if heap % ARENA_HEAP_SIZE != 0 || self.memory.word(heap)? != arena {
                return Err(Failure::Refused(format!("arena {arena:#x} is not at the start of a heap of its own")));
            }
        }
        Ok(ring)
    }

    /// One arena's figures, as malloc_info gives them; `moving` where the lists changed
    /// under every try (the figures are then those of the last, unfinished one).
    pub fn arena(&self, index: u64, arena: u64, main: bool) -> Result<(ArenaInfo, bool), Failure> {
        let mut last = None;
        for _ in 0..TRIES {
            let before = self.state(arena)?;
            // A heap glibc shrinks or drops under the walk reads as unmapped: a try that moved.
            let walked = match self.walk(index, arena, main, &before) {
                Err(error) if unmapped(&error) => (ArenaInfo { index, ..ArenaInfo::default() }, false),
                walked => walked?,
            };
            let settled = walked.1 && self.state(arena)? == before;
            if settled {
                return Ok((walked.0, false));
            }
            last = Some(walked.0);
        }
        Ok((last.unwrap_or_default(), true))
    }

    fn state(&self, arena: u64) -> io::Result<Vec<u8>> {
        let mut state = vec![0u8; self.layout.state_size as usize];
        self.memory.read(arena, &mut state)?;
        Ok(state)
    }

    /// The figures of one read of the lists, and whether it got through them all.
    fn walk(&self, index: u64, arena: u64, main: bool, state: &[u8]) -> io::Result<(ArenaInfo, bool)> {
        let field = |offset: u64| word_in(state, offset).unwrap_or(0);
        let layout = self.layout;
        let system = field(layout.system_mem);
        let mut info = ArenaInfo {
            index,
            system_current: system,
            system_max: field(layout.max_system_mem),
            ..ArenaInfo::default()
        };
        let heaps = if main {
            info.aspace_total = system;
            info.aspace_mprotect = system;
            self.brk_heap.clone().into_iter().collect()
        } else {
            match self.heaps(arena, field(layout.top))? {
                Some((heaps, total, mprotect)) => {
                    info.aspace_total = total;
                    info.aspace_mprotect = mprotect;
                    info.subheaps = Some(heaps.len() as u64);
                    heaps
                }
                None => return Ok((info, false)),
            }
        };
        let mut walk = Walk { memory: self.memory, heaps: &heaps, budget: system / MINSIZE + 2 };
        let top = field(layout.top);
        let Some(top_size) = walk.chunk(top)?.map(|chunk| chunk.size & !7) else {
            return Ok((info, false));
        };
        info.rest_count = 1;
        info.rest_bytes = top_size;
        let mut complete = true;
        for bin in 0..NFASTBINS {
            let (chunks, whole) = walk.fast_bin(field(layout.fastbins + 8 * bin))?;
            complete &= whole;
            if chunks.count > 0 {
                info.fast_count += chunks.count;
                info.fast_bytes += chunks.total;
                info.free_chunks.push(chunks);
            }
        }
        for bin in 1..NBINS {
            let links = layout.bins + (bin - 1) * 16;
            // bin_at(): the pseudo-chunk whose fd and bk are this bin's two words.
            let header = arena + links - FD;
            let (chunks, whole) = walk.bin(header, field(links))?;
            complete &= whole;
            if chunks.count > 0 {
                info.rest_count += chunks.count;
                info.rest_bytes += chunks.total;
                info.free_chunks.push(chunks);
            }
        }
        Ok((info, complete))
    }

    /// A non-main arena's heaps, newest (the one holding top) first, with their sizes
    /// summed; None where a heap does not name this arena.
    #[allow(clippy::type_complexity)]
    fn heaps(&self, arena: u64, top: u64) -> io::Result<Option<(Vec<Range<u64>>, u64, u64)>> {
        let (mut heaps, mut total, mut mprotect) = (Vec::new(), 0, 0);
        let mut heap = top & !(ARENA_HEAP_SIZE - 1);
        while heap != 0 {
            let mut header = [0u8; 32];
            self.memory.read(heap, &mut header)?;
            let field = |offset: u64| word_in(&header, offset).unwrap_or(0);
            let size = field(HEAP_SIZE_FIELD);
            if field(0) != arena || size > ARENA_HEAP_SIZE || heaps.len() >= MAX_HEAPS {
                return Ok(None);
            }
            heaps.push(heap..heap + size);
            total += size;
            mprotect += field(HEAP_MPROTECT);
            heap = field(HEAP_PREV);
        }
        Ok(Some((heaps, total, mprotect)))
    }

    /// glibc's count and bytes of mmapped chunks, from `mp_`, found in libc's data as the
    /// word that holds the start of [heap] (its `sbrk_base`) with counters that agree.
    pub fn mmapped(&self) -> io::Result<Option<(u64, u64)>> {
        let Some(brk) = self.brk_heap.as_ref().map(|heap| heap.start) else { return Ok(None) };
        let layout = self.layout;
        for range in &self.libc_data {
            let mut data = vec![0u8; usize::try_from(range.end - range.start).unwrap_or(0)];
            self.memory.read(range.start, &mut data)?;
            let at = |base: u64, offset: i64| base.checked_add_signed(offset);
            let int = |offset: u64| word_in(&data, offset).map(|word| word & 0xffff_ffff);
            for offset in (0..data.len() as u64).step_by(8) {
                if word_in(&data, offset) != Some(brk) {
                    continue;
                }
                let read = |relative: i64, wide: bool| {
                    at(offset, relative).and_then(|o| if wide { word_in(&data, o) } else { int(o) })
                };
                let (Some(n), Some(max_n), Some(bytes), Some(max_bytes)) = (
                    read(layout.par_n_mmaps, false),
                    read(layout.par_max_n_mmaps, false),
                    read(layout.par_mmapped_mem, true),
                    read(layout.par_max_mmapped_mem, true),
                ) else {
                    continue;
                };
                if n <= max_n && bytes <= max_bytes && (n == 0) == (bytes == 0) {
                    return Ok(Some((n, bytes)));
                }
            }
        }
        Ok(None)
    }
}

/// A free chunk's size word and links.
struct Chunk {
    size: u64,
    fd: u64,
    bk: u64,
}

/// One arena's lists being followed: the heaps every chunk must lie in, and how many
/// chunks may still be visited (an arena cannot hold more than its bytes ÷ MINSIZE).
struct Walk<'a> {
    memory: &'a ProcessMemory,
    heaps: &'a [Range<u64>],
    budget: u64,
}

impl Walk<'_> {
    /// The chunk at `address`, None where it lies outside the arena's heaps or its size is
    /// not one glibc would write.
    fn chunk(&mut self, address: u64) -> io::Result<Option<Chunk>> {
        let inside = |from: u64, length: u64| {
            from.checked_add(length).is_some_and(|end| self.heaps.iter().any(|h| h.start <= from && end <= h.end))
        };
        if self.budget == 0 || address % ALIGNMENT != 0 || !inside(address, CHUNK_HEAD as u64) {
            return Ok(None);
        }
        self.budget -= 1;
        let mut head = [0u8; CHUNK_HEAD];
        self.memory.read(address, &mut head)?;
        let field = |offset: u64| word_in(&head, offset).unwrap_or(0);
        let size = field(SIZE);
        let masked = size & !7;
        if masked < MINSIZE || masked % ALIGNMENT != 0 || !inside(address, masked) {
            return Ok(None);
        }
        Ok(Some(Chunk { size, fd: field(FD), bk: field(BK) }))
    }

    /// A fast bin: its chunks all of the first one's size, as malloc_info counts them.
    fn fast_bin(&mut self, first: u64) -> io::Result<(FreeChunks, bool)> {
        let (mut count, mut size, mut at) = (0, 0, first);
        while at != 0 {
            let Some(chunk) = self.chunk(at)? else { return Ok((FreeChunks { total: count * size, count }, false)) };
            if count == 0 {
                size = chunk.size & !7;
            }
            count += 1;
            at = ((at + FD) >> 12) ^ chunk.fd;
        }
        Ok((FreeChunks { total: count * size, count }, true))
    }

    /// A bin from its header pseudo-chunk: raw size words summed, as malloc_info does;
    /// each chunk's back link must name the one before it.
    fn bin(&mut self, header: u64, first: u64) -> io::Result<(FreeChunks, bool)> {
        let mut chunks = FreeChunks::default();
        // An arena glibc has not initialised yet has null links.
        if first == 0 {
            return Ok((chunks, true));
        }
        let (mut previous, mut at) = (header, first);
        while at != header {
            match self.chunk(at)? {
                Some(chunk) if chunk.bk == previous => {
                    chunks.count += 1;
                    chunks.total += chunk.size;
                    previous = at;
                    at = chunk.fd;
                }
                _ => return Ok((chunks, false)),
            }
        }
        Ok((chunks, true))
    }
}
