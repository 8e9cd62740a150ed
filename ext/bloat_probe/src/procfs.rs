//! Process memory from /proc/self. `memory` reads only /proc/self/statm, cheap enough for
//! every request; swap and the count of arena heap mappings need /proc/self/status and
//! /proc/self/maps, which cost about 75× more, so they are asked for separately.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// glibc reserves each non-main arena heap as 64 MiB of address space aligned to 64 MiB
/// (HEAP_MAX_SIZE = 2 × DEFAULT_MMAP_THRESHOLD_MAX on 64-bit).
pub const ARENA_HEAP_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    /// Resident anonymous memory (RssAnon): the malloc heaps live here.
    pub anon: u64,
    /// Resident file-backed and shared memory: code and libraries, mostly.
    pub file: u64,
}

pub fn memory() -> io::Result<Memory> {
    // Called on every request, so the file stays open and is re-read with pread, which
    // makes the kernel regenerate it. A forked child inherits the descriptor, which still
    // describes the parent, so a fork handler retires it: cheaper than asking getpid.
    static STATM: Mutex<Option<(u64, File)>> = Mutex::new(None);
    static FORKS_WATCHED: OnceLock<bool> = OnceLock::new();
    // SAFETY: registers a handler that only bumps an atomic, which is safe in a child.
    let watched = *FORKS_WATCHED.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(count_fork)) } == 0);
    let generation = FORKS.load(Ordering::Relaxed);
    let mut cached = STATM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = match cached.take() {
        // Unwatched (glibc could not register the handler), every call opens afresh.
        Some((opened_in, file)) if watched && opened_in == generation => file,
        _ => File::open("/proc/self/statm")?,
    };
    let mut buf = [0u8; 160];
    let len = file.read_at(&mut buf, 0)?;
    *cached = Some((generation, file));
    let text = std::str::from_utf8(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    parse_statm(text, page_size())
}

/// Forks seen by this process's line of descent: a descriptor opened under another
/// count belongs to an ancestor.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// VmSwap from /proc/self/status.
pub fn swap() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    status_kib(&status, "VmSwap:")
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmSwap line in /proc/self/status"))
}

/// How many 64 MiB glibc arena heaps /proc/self/maps shows. Adjacent heaps can merge into
/// one mapping, so this is a lower bound; `malloc_info` counts arenas exactly.
pub fn arena_heap_mappings() -> io::Result<u64> {
    Ok(count_heap_mappings(&fs::read_to_string("/proc/self/maps")?))
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

fn parse_statm(statm: &str, page: u64) -> io::Result<Memory> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("unexpected /proc/self/statm: {statm:?}"));
    let mut fields = statm.split_ascii_whitespace().map(|f| f.parse::<u64>().map_err(|_| bad()));
    let _size = fields.next().ok_or_else(bad)??;
    let resident = fields.next().ok_or_else(bad)??;
    let shared = fields.next().ok_or_else(bad)??;
    Ok(Memory {
        rss: resident * page,
        anon: resident.saturating_sub(shared) * page,
        file: shared * page,
    })
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// A heap starts at a 64 MiB boundary with a read-write anonymous mapping (its header is
/// always writable) and spans at most 64 MiB together with the PROT_NONE reserve after it.
fn count_heap_mappings(maps: &str) -> u64 {
    let mut count = 0;
    let mut lines = maps.lines().map(parse_maps_line).peekable();
    while let Some(line) = lines.next() {
        let Some((start, end, perms, anonymous)) = line else { continue };
        if !anonymous || !perms.starts_with("rw") || start % ARENA_HEAP_SIZE != 0 {
            continue;
        }
        let mut reserved_end = end;
        if let Some(Some((next_start, next_end, next_perms, true))) = lines.peek() {
            if *next_start == end && next_perms.starts_with("---") {
                reserved_end = *next_end;
            }
        }
        count += u64::from(reserved_end - start == ARENA_HEAP_SIZE);
    }
    count
}

/// (start, end, perms, anonymous) of one /proc/self/maps line.
fn parse_maps_line(line: &str) -> Option<(u64, u64, &str, bool)> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let path = fields.nth(3);
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    Some((start, end, perms, path.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_pages_become_bytes() {
        let m = parse_statm("52345 3000 1000 400 0 5000 0\n", 4096).expect("statm");
        assert_eq!(m, Memory { rss: 3000 * 4096, anon: 2000 * 4096, file: 1000 * 4096 });
        assert!(parse_statm("garbage", 4096).is_err());
    }

    #[test]
    fn this_process_has_resident_memory() {
        let m = memory().expect("memory");
        assert!(m.rss > 0 && m.rss == m.anon + m.file);
        assert!(swap().is_ok());
    }

    #[test]
    fn counts_heaps_by_their_64_mib_alignment() {
        let maps = "\
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n\
7f0000021000-7f0004000000 ---p 00000000 00:00 0 \n\
7f0004000000-7f0008000000 rw-p 00000000 00:00 0 \n\
7f0008000000-7f0008400000 rw-p 00000000 00:00 0 \n\
7f0008400000-7f000c000000 ---p 00000000 00:00 0 \n\
7f000c000000-7f000c001000 r--p 00000000 08:01 42 /usr/lib/libc.so.6\n\
7f0010000000-7f0010200000 rw-p 00000000 00:00 0 \n";
        // A grown-out heap, a fully used one, a third one, then a file and a plain mapping.
        assert_eq!(count_heap_mappings(maps), 3);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        assert_eq!(status_kib("Name:\truby\nVmSwap:\t    12 kB\n", "VmSwap:"), Some(12));
        assert_eq!(status_kib("Name:\truby\n", "VmSwap:"), None);
    }
}
