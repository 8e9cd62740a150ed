//! Which glibc arena the calling thread allocates from, and that arena's current and
//! highest system bytes and attached threads, without malloc_info (which walks every free
//! chunk: hundreds of µs when the arenas are fragmented).
//!
//! It reads glibc's internal layout (malloc/malloc.c and arena.c, 2.26 through 2.41): a
//! chunk's size word sits just before the pointer malloc returns, with bit 0x4
//! (NON_MAIN_ARENA) set when the chunk belongs to a non-main arena; a non-main arena's
//! heaps are aligned to HEAP_MAX_SIZE (64 MiB on 64-bit) and each begins with `ar_ptr`, its
//! arena; `struct malloc_state` ends with `next`, `next_free`, `attached_threads`,
//! `system_mem` and `max_system_mem`. Internal layouts change without notice, so the
//! layout is checked once per process against malloc_info: the arenas met by following
//! `next` must carry, in order, the system figures malloc_info prints for each heap. Until
//! that check has passed, nothing is read at a guessed address: the walk, and the thread's
//! own heap's first word, are read through a pipe, where a wrong address fails with EFAULT
//! instead of crashing (the one word read in place is the size word just before a block
//! that malloc has just returned).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::allocator::{Allocator, Kind};
use crate::glibc;
use crate::malloc_info;
use crate::reading;
use crate::schema::Unit::{Bytes, Count, Flag, Text};

/// Where glibc keeps what this module reads, in bytes (x86_64 and aarch64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    heap_max_size: usize,
    next: usize,
    attached_threads: usize,
    system_mem: usize,
    max_system_mem: usize,
}

const GLIBC: Layout = Layout {
    heap_max_size: crate::procfs::ARENA_HEAP_SIZE as usize,
    next: 2160,
    attached_threads: 2176,
    system_mem: 2184,
    max_system_mem: 2192,
};
const SIZE_WORD: usize = std::mem::size_of::<usize>();
const NON_MAIN_ARENA: usize = 0x4;
/// Larger than any block glibc's per-thread cache (tcache) holds (1032 bytes by default),
/// which would hand out a block freed here but taken from another thread's arena.
const PROBE_BYTES: usize = 4200;
/// More arenas than glibc ever makes (8 × 1024 cores): a longer walk has lost its way.
const MAX_ARENAS: usize = 8192;
/// Tries at a check while other threads keep changing the arenas under it.
const CHECK_TRIES: usize = 3;
/// After a check that could not conclude, the next waits this long: a check reads
/// malloc_info twice, which locks every arena in turn, and a busy process must not pay
/// that on every call.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

reading! {
    /// The calling thread's arena. `available` is false, with the reason, where it cannot
    /// be read truthfully (another allocator, another layout); the figures are then nil.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ThreadArena as "ThreadArena" {
        available: bool => Flag,
        reason: Option<String> => Text,
        /// Its place in malloc_info's list at the last check (a new arena, which glibc puts
        /// first after the main one, moves the others on: the next check sees it).
        index: Option<u64> => Count,
        /// The arena's address: the same for the arena as long as the process lives, where
        /// its index in malloc_info's list moves when glibc makes a new arena.
        id: Option<u64> => Count,
        system: Option<u64> => Bytes,
        system_max: Option<u64> => Bytes,
        attached_threads: Option<u64> => Count,
    }
}

impl ThreadArena {
    fn unavailable(reason: impl Into<String>) -> Self {
        ThreadArena {
            available: false,
            reason: Some(reason.into()),
            index: None,
            id: None,
            system: None,
            system_max: None,
            attached_threads: None,
        }
    }
}

/// What the check found: every arena's address in malloc_info's order (the main arena
/// first), or why the layout cannot be trusted.
enum Known {
    Unchecked,
    Arenas(Vec<usize>),
    Refused(String),
}

static KNOWN: Mutex<Known> = Mutex::new(Known::Unchecked);
/// When a check may be tried again after one that could not conclude.
static NEXT_CHECK: Mutex<Option<Instant>> = Mutex::new(None);

/// The calling thread's arena, read as described above. `live` is the process's allocator.
pub fn read(live: &Allocator) -> ThreadArena {
    if live.name != Kind::Glibc {
        return ThreadArena::unavailable(format!("{live} serves this process, not glibc's arenas"));
    }
    let mut known = KNOWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let own = match own_arena_cached(matches!(*known, Known::Arenas(_))) {
        Ok(own) => own,
        Err(reason) => return ThreadArena::unavailable(reason),
    };
    let located = match (&*known, own) {
        (Known::Refused(reason), _) => return ThreadArena::unavailable(reason.clone()),
        (Known::Arenas(arenas), Own::Main) => arenas.first().map(|&main| (0, main)),
        (Known::Arenas(arenas), Own::NonMain(address)) => {
            arenas.iter().position(|&a| a == address).map(|index| (index, address))
        }
        (Known::Unchecked, _) => None,
    };
    let (index, arena) = match (located, own) {
        (Some(found), _) => found,
        (None, Own::Main) => return ThreadArena::unavailable(MAIN_ONLY),
        (None, Own::NonMain(start)) => match recheck(&mut known, start) {
            Ok(found) => found,
            Err(unavailable) => return unavailable,
        },
    };
    // SAFETY: `arena` passed the check against malloc_info, so it is a live struct
    // malloc_state (arenas are never freed) and the offsets are inside it.
    let word = |offset: usize| unsafe { std::ptr::read_volatile((arena + offset) as *const usize) } as u64;
    ThreadArena {
        available: true,
        reason: None,
        index: Some(index as u64),
        id: Some(arena as u64),
        system: Some(word(GLIBC.system_mem)),
        system_max: Some(word(GLIBC.max_system_mem)),
        attached_threads: Some(word(GLIBC.attached_threads)),
    }
}

/// First use, or an arena made since the last check: checks (again), at most once every
/// RECHECK_AFTER after a check that could not conclude. Returns (index, arena).
fn recheck(known: &mut Known, start: usize) -> Result<(usize, usize), ThreadArena> {
    let mut next = NEXT_CHECK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if next.is_some_and(|at| Instant::now() < at) {
        return Err(ThreadArena::unavailable(
            "this thread's arena is new since the last check; the next comes shortly",
        ));
    }
    match check(start) {
        Ok(arenas) => {
            let index = arenas.iter().position(|&a| a == start);
            *known = Known::Arenas(arenas);
            *next = None;
            index
                .map(|index| (index, start))
                .ok_or_else(|| ThreadArena::unavailable("this thread's arena is not in glibc's list of arenas"))
        }
        Err(Failure::Layout(reason)) => {
            *known = Known::Refused(reason.clone());
            Err(ThreadArena::unavailable(reason))
        }
        Err(Failure::NotYet(reason)) => {
            *next = Instant::now().checked_add(RECHECK_AFTER);
            Err(ThreadArena::unavailable(reason))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Main,
    NonMain(usize),
}

const MAIN_ONLY: &str = "this thread allocates from the main arena, and glibc's list of arenas is read from a \
                         non-main one, which no thread has shown yet";

/// A thread keeps its arena unless glibc moves it (after an allocation failed in it). The
/// probe's malloc of own_arena bypasses the per-thread cache and may sort the arena's
/// unsorted bin first: 4 µs in a Rails worker against 0.1 µs in a small process. So each
/// thread reads its arena again only this long after it last did.
const REPROBE_AFTER: Duration = Duration::from_secs(1);

thread_local! {
    static OWN: Cell<Option<(Own, Instant)>> = const { Cell::new(None) };
}

/// own_arena, remembered for REPROBE_AFTER once the layout is checked.
fn own_arena_cached(checked: bool) -> Result<Own, String> {
    if let (true, Some((own, at))) = (checked, OWN.with(Cell::get)) {
        if at.elapsed() < REPROBE_AFTER {
            return Ok(own);
        }
    }
    let own = own_arena(checked)?;
    if checked {
        OWN.with(|cell| cell.set(Some((own, Instant::now()))));
    }
    Ok(own)
}

/// The arena a small allocation of this thread comes from. Until the layout has passed its
/// check (`checked`), the heap's first word is read through the pipe.
fn own_arena(checked: bool) -> Result<Own, String> {
    // black_box: the compiler knows malloc, and may drop a block that is never used, or
    // treat a read before it as undefined; an opaque pointer is read as memory.
    // SAFETY: a plain malloc, freed below.
    let block = std::hint::black_box(unsafe { libc::malloc(PROBE_BYTES) }).cast::<u8>();
    if block.is_null() {
        return Err("malloc returned NULL".into());
    }
    // SAFETY: glibc's chunk header (prev_size, size) precedes every pointer malloc returns,
    // so the size word is the word just before the block.
    let size_word = unsafe { std::ptr::read_volatile(block.sub(SIZE_WORD).cast::<usize>()) };
    let own = if size_word & NON_MAIN_ARENA == 0 {
        Ok(Own::Main)
    } else {
        let heap = block as usize & !(GLIBC.heap_max_size - 1);
        if checked {
            // SAFETY: the layout passed its check, so a non-main arena's chunk lies in a heap
            // that starts at this aligned address with its heap_info, whose first word is the
            // arena.
            Ok(Own::NonMain(unsafe { std::ptr::read(heap as *const usize) }))
        } else {
            SafeReader::new()
                .and_then(|reader| reader.word(heap))
                .map(Own::NonMain)
                .map_err(|e| format!("reading this thread's heap at {heap:#x}: {e}"))
        }
    };
    // SAFETY: allocated above, freed once.
    unsafe { libc::free(block.cast()) };
    own
}

enum Failure {
    /// The layout is not the one known here: final for this process.
    Layout(String),
    /// Not checkable now (no arena to start from, or arenas changing): try again later.
    NotYet(String),
}

/// Follows `next` from an arena and matches what it finds against malloc_info, taken
/// before and after the walk; returns the arenas in malloc_info's order.
fn check(start: usize) -> Result<Vec<usize>, Failure> {
    let reader = SafeReader::new().map_err(|e| Failure::NotYet(format!("a pipe for the check: {e}")))?;
    for _ in 0..CHECK_TRIES {
        let before = figures_by_malloc_info().map_err(Failure::NotYet)?;
        let walk = walk(&reader, start).map_err(Failure::Layout)?;
        let after = figures_by_malloc_info().map_err(Failure::NotYet)?;
        // An arena that other threads changed meanwhile proves nothing either way; an arena
        // made meanwhile changes the count: try again.
        let listed: Vec<Option<Figures>> = before.iter().zip(&after).map(|(b, a)| (b == a).then_some(*a)).collect();
        if before.len() != after.len() || listed.iter().all(Option::is_none) {
            continue;
        }
        return match_rotation(&walk, &listed).ok_or_else(|| {
            Failure::Layout(format!(
                "glibc's internal arena layout differs from the one bloat_probe knows (glibc {}): the arenas \
                 reached through `next` do not carry malloc_info's figures",
                crate::allocator::detect().version
            ))
        });
    }
    Err(Failure::NotYet("the arenas kept changing while they were checked; the next reading tries again".into()))
}

/// An arena's current and highest system bytes.
type Figures = (u64, u64);

/// (system, max) of each arena, as malloc_info prints them, main arena first.
fn figures_by_malloc_info() -> Result<Vec<Figures>, String> {
    let xml = glibc::malloc_info_xml().map_err(|e| format!("malloc_info: {e}"))?;
    let info = malloc_info::parse(&xml).map_err(|e| e.to_string())?;
    Ok(info.arenas.iter().map(|arena| (arena.system_current, arena.system_max)).collect())
}

/// Each arena met by following `next` from `start` until it comes back: its address and
/// its (system, max), every word read through the pipe.
fn walk(reader: &SafeReader, start: usize) -> Result<Vec<(usize, Figures)>, String> {
    let mut arenas = Vec::new();
    let mut at = start;
    loop {
        let word = |offset| reader.word(at + offset).map_err(|e| format!("arena at {at:#x}: {e}"));
        arenas.push((at, (word(GLIBC.system_mem)? as u64, word(GLIBC.max_system_mem)? as u64)));
        at = word(GLIBC.next)?;
        if at == start {
            return Ok(arenas);
        }
        if arenas.len() >= MAX_ARENAS {
            return Err(format!("following `next` from {start:#x} did not come back within {MAX_ARENAS} arenas"));
        }
    }
}

/// The walk is malloc_info's list turned round: the rotation at which every arena that
/// held still (Some) matches, if exactly one does, gives the arenas in malloc_info's order.
fn match_rotation(walk: &[(usize, Figures)], listed: &[Option<Figures>]) -> Option<Vec<usize>> {
    if walk.len() != listed.len() || walk.is_empty() {
        return None;
    }
    let n = walk.len();
    let fits = |k: usize, i: usize| listed[i].is_none_or(|figures| walk[(k + i) % n].1 == figures);
    let mut matches = (0..n).filter(|&k| (0..n).all(|i| fits(k, i)));
    let first = matches.next()?;
    // Two rotations matching (arenas with equal figures) leave the main arena unknown.
    if matches.next().is_some() {
        return None;
    }
    Some((0..n).map(|i| walk[(first + i) % n].0).collect())
}

/// Reads words of this process's memory through a pipe: the kernel copies them, and an
/// address that is not mapped fails with EFAULT rather than a segfault.
struct SafeReader {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl SafeReader {
    fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 returns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned only here.
        Ok(unsafe { SafeReader { read_end: OwnedFd::from_raw_fd(fds[0]), write_end: OwnedFd::from_raw_fd(fds[1]) } })
    }

    fn word(&self, address: usize) -> io::Result<usize> {
        if address & (SIZE_WORD - 1) != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{address:#x} is not word-aligned")));
        }
        // SAFETY: write only reads `address` inside the kernel, which fails with EFAULT
        // where nothing is mapped.
        let wrote = unsafe { libc::write(self.write_end.as_raw_fd(), address as *const libc::c_void, SIZE_WORD) };
        if wrote != SIZE_WORD as isize {
            return Err(io::Error::last_os_error());
        }
        let mut word = [0u8; SIZE_WORD];
        // SAFETY: word has room for SIZE_WORD bytes; the pipe holds exactly those.
        let got = unsafe { libc::read(self.read_end.as_raw_fd(), word.as_mut_ptr().cast(), SIZE_WORD) };
        if got != SIZE_WORD as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::from_ne_bytes(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator;
    use std::sync::{Arc, Barrier};
    use std::thread;

    #[test]
    fn an_unmapped_address_is_an_error_not_a_crash() {
        let reader = SafeReader::new().expect("pipe");
        assert!(reader.word(8).is_err());
        let value: usize = 0x1234_5678;
        assert_eq!(reader.word(&value as *const usize as usize).expect("read"), 0x1234_5678);
    }

    #[test]
    fn a_rotation_matches_only_where_every_arena_does() {
        let walk = [(30, (3, 3)), (10, (1, 1)), (20, (2, 2))];
        assert_eq!(match_rotation(&walk, &[Some((1, 1)), Some((2, 2)), Some((3, 3))]), Some(vec![10, 20, 30]));
        assert_eq!(match_rotation(&walk, &[Some((1, 1)), Some((3, 3)), Some((2, 2))]), None);
        assert_eq!(match_rotation(&walk, &[Some((1, 1)), None, None]), Some(vec![10, 20, 30]), "one that held still");
        assert_eq!(match_rotation(&[(1, (5, 5)), (2, (5, 5))], &[Some((5, 5)), Some((5, 5))]), None, "ambiguous");
    }

    /// Threads that each hold an allocation of their own (so that each has an arena) read
    /// their arena, and malloc_info lists an arena with those figures. Other tests run in
    /// this process meanwhile: they may grow a shared arena, and glibc puts a new arena
    /// first after the main one, which moves the others' indices. The gem's tests compare
    /// each index's figures exactly, in a process of their own.
    #[test]
    fn each_thread_reads_its_own_arena_as_malloc_info_reports_it() {
        let live = allocator::detect();
        let threads = 6;
        let barrier = Arc::new(Barrier::new(threads + 1));
        let read_barrier = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, read_barrier, live) = (Arc::clone(&barrier), Arc::clone(&read_barrier), live.clone());
                thread::spawn(move || {
                    // SAFETY: a plain malloc, freed below; it makes this thread pick an arena.
                    let held = unsafe { libc::malloc(4096 + i) };
                    barrier.wait(); // every thread has its arena
                    let reading = read(&live);
                    read_barrier.wait();
                    // SAFETY: allocated above.
                    unsafe { libc::free(held) };
                    reading
                })
            })
            .collect();
        barrier.wait();
        read_barrier.wait();
        let listed = figures_by_malloc_info().expect("malloc_info");
        let readings: Vec<ThreadArena> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        for reading in &readings {
            assert!(reading.available, "{reading:?}");
            assert!((reading.index.expect("index") as usize) < listed.len(), "{reading:?} against {listed:?}");
            let max = reading.system_max.expect("max");
            assert!(listed.iter().any(|&(_, listed_max)| listed_max >= max), "{reading:?} against {listed:?}");
            assert!(reading.system.expect("system") > 0, "{reading:?}");
            assert!(reading.attached_threads.expect("attached") >= 1);
        }
    }
}
