//! Process memory from /proc/self. `memory` reads only /proc/self/statm, cheap enough for
//! every request; a detailed reading adds /proc/self/smaps_rollup (PSS, USS, swap: the
//! kernel walks every resident page for them) and glibc's arena heaps from
//! /proc/self/maps with their resident pages by mincore(2), so it is asked for separately.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::reading;
use crate::schema::Unit::{Bytes, Count, Seconds};

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
    let generation = fork_generation();
    let mut cached = STATM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = match cached.take() {
        Some((opened_in, file)) if generation == Some(opened_in) => file,
        _ => File::open("/proc/self/statm")?,
    };
    let mut buf = [0u8; 160];
    let len = file.read_at(&mut buf, 0)?;
    let text = std::str::from_utf8(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let memory = parse_statm(text, page_size())?;
    // Kept only once it has given a reading: a file that gave none is opened afresh next time.
    *cached = generation.map(|generation| (generation, file));
    Ok(memory)
}

/// Forks seen by this process's line of descent: what was cached under another count (a
/// descriptor, a thread id) belongs to an ancestor.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The count of forks, or None where glibc could not register the handler that counts them
/// (then nothing may be cached across calls).
pub(crate) fn fork_generation() -> Option<u64> {
    static FORKS_WATCHED: OnceLock<bool> = OnceLock::new();
    // SAFETY: registers a handler that only bumps an atomic, which is safe in a child.
    let watched = *FORKS_WATCHED.get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(count_fork)) } == 0);
    watched.then(|| FORKS.load(Ordering::Relaxed))
}

extern "C" fn count_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// What /proc/self/smaps_rollup and the arena heaps add to statm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detail {
    /// Proportional set size: shared pages divided among the processes sharing them, so
    /// that forked Puma workers add up to what the machine holds.
    pub pss: u64,
    /// Unique set size: pages no other process maps (Private_Clean + Private_Dirty), what
    /// ending this process would free.
    pub uss: u64,
    pub swap: u64,
    pub shared: Sharing,
}

/// Resident pages by whether another process maps them too (a Puma worker and its master
/// after fork) and whether they were written since they were read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sharing {
    pub shared_clean: u64,
    pub shared_dirty: u64,
    pub private_clean: u64,
    pub private_dirty: u64,
}

/// This process's arena heaps: their places from maps, their resident pages from the page
/// table (mincore). smaps would make the kernel walk and print every other mapping too,
/// which took as long as smaps_rollup itself in a fragmented 800 MB process.
fn own_arena_heaps() -> io::Result<ArenaHeaps> {
    let page = page_size();
    Ok(arena_heaps(&fs::read_to_string("/proc/self/maps")?, |m| resident_in(m.start, m.end, page)))
}

reading! {
    /// BloatProbe.memory: statm's figures always; the rest only when detail was asked for.
    #[derive(Debug, Clone, Copy, PartialEq, Default)]
    pub struct MemoryReading as "Memory" {
        rss: u64 => Bytes,
        anon: u64 => Bytes,
        file: u64 => Bytes,
        swap: Option<u64> => Bytes,
        heap_mappings: Option<u64> => Count,
        pss: Option<u64> => Bytes,
        uss: Option<u64> => Bytes,
        arena_resident: Option<u64> => Bytes,
        /// How long ago the kernel walked the pages for pss, uss, swap and the four below (see Reuse).
        rollup_age: Option<f64> => Seconds,
        /// Resident pages another process maps too: in a forked worker, mostly the master's.
        shared_clean: Option<u64> => Bytes,
        shared_dirty: Option<u64> => Bytes,
        /// Resident pages no other process maps (together, uss).
        private_clean: Option<u64> => Bytes,
        private_dirty: Option<u64> => Bytes,
    }
}

impl MemoryReading {
    /// Resident bytes this process shares with another (shared_clean + shared_dirty).
    pub fn shared(&self) -> Option<u64> {
        Some(self.shared_clean? + self.shared_dirty?)
    }

    fn with_rollup(self, rollup: Detail, age: f64) -> Self {
        let Sharing { shared_clean, shared_dirty, private_clean, private_dirty } = rollup.shared;
        MemoryReading {
            swap: Some(rollup.swap),
            pss: Some(rollup.pss),
            uss: Some(rollup.uss),
            rollup_age: Some(age),
            shared_clean: Some(shared_clean),
            shared_dirty: Some(shared_dirty),
            private_clean: Some(private_clean),
            private_dirty: Some(private_dirty),
            ..self
        }
    }
}

/// statm, and with `with_detail` smaps_rollup (walked now) and the arena heaps.
pub fn reading(with_detail: bool) -> io::Result<MemoryReading> {
    if with_detail {
        reading_reusing(None, None)
    } else {
        let Memory { rss, anon, file } = memory()?;
        Ok(MemoryReading { rss, anon, file, ..MemoryReading::default() })
    }
}

/// When a detailed reading may take PSS, USS and swap from the last walk of smaps_rollup
/// instead of walking again: for them the kernel visits every resident page (about 15 ms
/// for 300 MiB here), where the rest of a moment costs a few. The walk is reused while it
/// is younger than `max_age` and RSS has moved by less than `rss_drift` (or a hundredth of
/// RSS, whichever is more) since; a fork always walks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    pub max_age: Duration,
    pub rss_drift: u64,
}

/// What a moment reuses: a minute's walk, while RSS holds within 1 MiB (or 1%).
pub const MOMENT_REUSE: Reuse = Reuse { max_age: Duration::from_secs(60), rss_drift: 1 << 20 };

impl Reuse {
    /// Whether a walk `age` old, taken at RSS `then`, still stands for RSS `now`.
    fn allows(self, age: Duration, then: u64, now: u64) -> bool {
        age < self.max_age && then.abs_diff(now) < self.rss_drift.max(now / 100)
    }
}

/// The last walk of smaps_rollup: when, in which line of forks, at what RSS, and what it
/// gave; with the arena heaps' resident bytes last counted, and what the arenas held then.
struct Walk {
    at: Instant,
    generation: u64,
    rss: u64,
    rollup: Detail,
    heaps: Option<HeapsCount>,
}

#[derive(Debug, Clone, Copy)]
struct HeapsCount {
    arenas: ArenasHeld,
    heaps: ArenaHeaps,
}

/// What glibc's arenas held at a moment, for telling whether a count of their heaps'
/// resident pages (1.6 ms by mincore for 16 arenas of 64 MiB) still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenasHeld {
    /// Every arena's system bytes, as one number: a new arena, a heap grown or shrunk moves it.
    pub systems: u64,
    /// Their free bytes in all.
    pub free: u64,
}

/// statm, smaps_rollup (walked now, or reused as `reuse` allows) and the arena heaps.
/// `arenas`: what the arenas hold now. The heaps' resident bytes are counted again unless
/// the reused walk counted them when every arena had the same system bytes and their free
/// bytes were within the RSS drift: pages come back into residence only by being written,
/// which moves RSS or the free bytes (an allocation), and leave it only by a trim or a
/// shrink, which moves RSS; so a count is never carried across a trim or the regrowth after.
pub fn reading_reusing(reuse: Option<Reuse>, arenas: Option<ArenasHeld>) -> io::Result<MemoryReading> {
    static LAST_WALK: Mutex<Option<Walk>> = Mutex::new(None);
    let Memory { rss, anon, file } = memory()?;
    let generation = FORKS.load(Ordering::Relaxed);
    let mut last = LAST_WALK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let reusable = last.as_ref().filter(|walk| {
        walk.generation == generation && reuse.is_some_and(|reuse| reuse.allows(walk.at.elapsed(), walk.rss, rss))
    });
    let (rollup, age, counted) = match reusable {
        Some(walk) => {
            let drift = reuse.map_or(0, |reuse| reuse.rss_drift.max(rss / 100));
            let still = |count: &HeapsCount| {
                arenas.is_some_and(|now| {
                    now.systems == count.arenas.systems && now.free.abs_diff(count.arenas.free) < drift
                })
            };
            (walk.rollup, walk.at.elapsed().as_secs_f64(), walk.heaps.filter(still).map(|count| count.heaps))
        }
        None => {
            let rollup = parse_rollup(&fs::read_to_string("/proc/self/smaps_rollup")?)?;
            *last = Some(Walk { at: Instant::now(), generation, rss, rollup, heaps: None });
            (rollup, 0.0, None)
        }
    };
    let heaps = match counted {
        Some(heaps) => heaps,
        None => {
            let heaps = own_arena_heaps()?;
            if let (Some(walk), Some(arenas)) = (last.as_mut(), arenas) {
                walk.heaps = Some(HeapsCount { arenas, heaps });
            }
            heaps
        }
    };
    drop(last);
    let reading = MemoryReading {
        rss,
        anon,
        file,
        heap_mappings: Some(heaps.mappings),
        arena_resident: Some(heaps.resident),
        ..MemoryReading::default()
    };
    Ok(reading.with_rollup(rollup, age))
}

pub fn page_size() -> u64 {
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
    Ok(Memory { rss: resident * page, anon: resident.saturating_sub(shared) * page, file: shared * page })
}

/// The `number`th field (from 1, as proc(5) counts them) of a /proc/PID/stat line, from
/// the 3rd on. The 2nd, the command's name in parentheses, may hold spaces and parentheses
/// itself, so fields are counted after its last ')'.
pub fn stat_field(stat: &str, number: usize) -> Option<&str> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(number.checked_sub(3)?)
}

/// When a process started, in seconds since the epoch: the boot time (/proc/stat's btime)
/// plus its start in clock ticks (the 22nd field of its stat).
pub fn start_time(pid: u32) -> io::Result<f64> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("no {what}"));
    let boot: u64 = fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
        .ok_or_else(|| bad("btime in /proc/stat"))?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks: u64 =
        stat_field(&stat, 22).and_then(|ticks| ticks.parse().ok()).ok_or_else(|| bad("start time in its stat"))?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&hz| hz > 0).ok_or_else(|| bad("clock tick rate"))?;
    Ok(boot as f64 + ticks as f64 / per_second as f64)
}

/// Another process's memory, as a detailed reading gives one's own: statm, a walk of
/// smaps_rollup, and with `arena_heaps` the arena heaps' resident bytes, counted in
/// /proc/PID/pagemap over the heaps alone (mincore sees only one's own page table; smaps
/// would walk every other mapping too, as long again as smaps_rollup).
pub fn reading_of(pid: u32, arena_heaps: bool) -> io::Result<MemoryReading> {
    let page = page_size();
    let Memory { rss, anon, file } = parse_statm(&fs::read_to_string(format!("/proc/{pid}/statm"))?, page)?;
    let rollup = parse_rollup(&fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?)?;
    let heaps = if arena_heaps {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
        let pagemap = File::open(format!("/proc/{pid}/pagemap"))?;
        let mut failed = None;
        let heaps = self::arena_heaps(&maps, |m| {
            resident_by_pagemap(&pagemap, m.start, m.end, page).unwrap_or_else(|error| {
                failed.get_or_insert(error);
                0
            })
        });
        if let Some(error) = failed {
            return Err(error);
        }
        Some(heaps)
    } else {
        None
    };
    let reading = MemoryReading {
        rss,
        anon,
        file,
        heap_mappings: heaps.map(|heaps| heaps.mappings),
        arena_resident: heaps.map(|heaps| heaps.resident),
        ..MemoryReading::default()
    };
    Ok(reading.with_rollup(rollup, 0.0))
}

/// Resident bytes of [start, end) of another process: the pages whose pagemap entry has
/// its present bit (63), which the kernel gives to any reader allowed to read the process.
fn resident_by_pagemap(pagemap: &File, start: u64, end: u64, page: u64) -> io::Result<u64> {
    const PRESENT: u64 = 1 << 63;
    // A mebibyte of entries at a time: 128 MiB of address space.
    const ENTRIES: u64 = 1 << 17;
    let mut buffer = vec![0u8; (ENTRIES * 8) as usize];
    let (mut first, last) = (start / page, end.div_ceil(page));
    let mut present = 0;
    while first < last {
        let count = (last - first).min(ENTRIES);
        let bytes = &mut buffer[..(count * 8) as usize];
        pagemap.read_exact_at(bytes, first * 8)?;
        let entries = bytes.chunks_exact(8).filter_map(|entry| <[u8; 8]>::try_from(entry).ok());
        present += entries.filter(|&entry| u64::from_ne_bytes(entry) & PRESENT != 0).count() as u64;
        first += count;
    }
    Ok(present * page)
}

fn parse_rollup(rollup: &str) -> io::Result<Detail> {
    let field = |key: &str| {
        kib_field(rollup, key)
            .map(|kib| kib * 1024)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {key} line in smaps_rollup")))
    };
    let shared = Sharing {
        shared_clean: field("Shared_Clean:")?,
        shared_dirty: field("Shared_Dirty:")?,
        private_clean: field("Private_Clean:")?,
        private_dirty: field("Private_Dirty:")?,
    };
    Ok(Detail { pss: field("Pss:")?, uss: shared.private_clean + shared.private_dirty, swap: field("Swap:")?, shared })
}

/// The value of a "Key:   123 kB" line.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ArenaHeaps {
    mappings: u64,
    resident: u64,
}

/// One mapping of /proc/self/smaps (or maps): its header line, and its Rss if listed.
pub(crate) struct Mapping<'a> {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) perms: &'a str,
    pub(crate) path: Option<&'a str>,
    rss: u64,
}

/// A non-main arena heap starts at a 64 MiB boundary with a read-write anonymous mapping
/// (its header is always writable) and spans at most 64 MiB together with the PROT_NONE
/// reserve after it; the main arena is the brk heap, "[heap]".
/// `resident`: how many bytes of a mapping are resident (smaps' Rss, or the page table's).
fn arena_heaps(maps: &str, mut resident: impl FnMut(&Mapping) -> u64) -> ArenaHeaps {
    let mut heaps = ArenaHeaps::default();
    let mut mappings = parse_mappings(maps).into_iter().peekable();
    while let Some(m) = mappings.next() {
        if m.path == Some("[heap]") {
            heaps.resident += resident(&m);
            continue;
        }
        if m.path.is_some() || !m.perms.starts_with("rw") || m.start % ARENA_HEAP_SIZE != 0 {
            continue;
        }
        let reserved_end = match mappings.peek() {
            Some(next) if next.start == m.end && next.path.is_none() && next.perms.starts_with("---") => next.end,
            _ => m.end,
        };
        // Neighbouring heaps merge into one mapping (a full heap and the next one's start):
        // a span of several heaps counts as each of them.
        let span = reserved_end - m.start;
        if span > 0 && span % ARENA_HEAP_SIZE == 0 {
            heaps.mappings += span / ARENA_HEAP_SIZE;
            heaps.resident += resident(&m);
        }
    }
    heaps
}

/// Resident bytes of [start, end) of this process's memory: the pages whose mincore(2)
/// bit is set, which for anonymous memory is what smaps counts as Rss. 0 where the range is
/// no longer mapped (glibc may drop an empty heap between the read of maps and this).
fn resident_in(start: u64, end: u64, page: u64) -> u64 {
    let (Ok(length), Ok(pages)) =
        (usize::try_from(end.saturating_sub(start)), usize::try_from(end.saturating_sub(start).div_ceil(page)))
    else {
        return 0;
    };
    let mut present = vec![0u8; pages];
    // SAFETY: `present` has a byte for each page of the range, as mincore writes; mincore
    // reads the page table only, never the memory, and fails cleanly on an unmapped range.
    let status = unsafe { libc::mincore(start as *mut libc::c_void, length, present.as_mut_ptr()) };
    if status != 0 {
        return 0;
    }
    present.iter().filter(|&&bits| bits & 1 == 1).count() as u64 * page
}

pub(crate) fn parse_mappings(text: &str) -> Vec<Mapping<'_>> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(mapping) = parse_mapping_header(line) {
            mappings.push(mapping);
        } else if let (Some(last), Some(kib)) = (mappings.last_mut(), kib_field(line, "Rss:")) {
            last.rss = kib * 1024;
        }
    }
    mappings
}

/// "start-end perms offset dev inode [path]"; None for smaps' "Key: value" lines.
fn parse_mapping_header(line: &str) -> Option<Mapping<'_>> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3);
    Some(Mapping { start, end, perms, path, rss: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last walk is one per process: tests that walk take turns, so that one's reuse is
    /// not another's walk.
    static WALKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn walks_in_turn() -> std::sync::MutexGuard<'static, ()> {
        WALKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn a_child_s_start_time_is_when_it_was_spawned_by_the_clock() {
        let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        let before = now();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep");
        let after = now();
        let started = start_time(child.id());
        child.kill().expect("kill");
        child.wait().expect("wait");
        // btime is whole seconds: the sum may be up to a second early.
        let started = started.expect("its stat");
        assert!(started >= before - 1.0 && started <= after + 0.02, "{before} <= {started} <= {after}");
    }

    #[test]
    fn stat_fields_count_after_a_name_that_holds_spaces_and_parentheses() {
        let stat = "4242 (puma srv tp (1)) S 1 4242 4242 0 -1 4194624 777 0 0 0 12 3";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 10), Some("777"));
        assert_eq!(stat_field(stat, 2), None);
        assert_eq!(stat_field("4242 (x) S 1", 10), None);
    }

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
        // Both from one read of smaps_rollup: other tests allocate meanwhile, so a
        // comparison with the statm reading above would race them.
        let _turn = walks_in_turn();
        let d = reading_reusing(None, None).expect("detail");
        let (pss, uss) = (d.pss.expect("pss"), d.uss.expect("uss"));
        assert!(uss > 0 && uss <= pss, "{d:?}");
    }

    /// The page table's count (mincore) against the kernel's own smaps Rss, read just
    /// before and just after it: other tests allocate meanwhile, so it must fall between
    /// the two, give or take what they can touch in that time.
    #[test]
    fn arena_heaps_resident_by_mincore_is_what_smaps_counts() {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // Blocks under glibc's mmap threshold, so that they come from this thread's arena.
            let blocks: Vec<Vec<u8>> = (0..512).map(|_| vec![1u8; 64 << 10]).collect();
            ready.send(()).expect("ready");
            hold.recv().ok();
            std::hint::black_box(&blocks);
        });
        started.recv().expect("the holder touched its block");
        let by_smaps = || arena_heaps(&fs::read_to_string("/proc/self/smaps").expect("smaps"), |m| m.rss).resident;
        let before = by_smaps();
        let page = page_size();
        let maps = fs::read_to_string("/proc/self/maps").expect("maps");
        let by_mincore = arena_heaps(&maps, |m| resident_in(m.start, m.end, page)).resident;
        let after = by_smaps();
        release.send(()).expect("release");
        holder.join().expect("holder");
        let slack = 4 << 20;
        let (low, high) = (before.min(after), before.max(after));
        assert!(by_mincore + slack >= low && by_mincore <= high + slack, "{before} {by_mincore} {after}");
        assert!(by_mincore >= 32 << 20, "the held blocks are resident: {by_mincore}");
        assert_eq!(resident_in(0, 1 << 20, page), 0, "an unmapped range holds nothing");
    }

    /// The heaps' resident bytes are carried over while the arenas hold the same, and
    /// counted again (by the page table) once they do not: a thread that writes 64 MiB into
    /// its arena shows only then.
    #[test]
    fn the_arena_heaps_count_is_reused_only_while_the_arenas_hold_the_same() {
        let _turn = walks_in_turn();
        let reuse = Reuse { max_age: Duration::from_secs(60), rss_drift: 1 << 30 };
        let held = ArenasHeld { systems: 7, free: 4 << 30 };
        let resident = |arenas| reading_reusing(Some(reuse), Some(arenas)).expect("a reading").arena_resident;
        let first = resident(held).expect("counted");
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (ready, written) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            // Under glibc's mmap threshold, so that they come from this thread's arena.
            let blocks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 64 << 10]).collect();
            ready.send(()).expect("ready");
            hold.recv().ok();
            std::hint::black_box(&blocks);
        });
        written.recv().expect("the blocks are written");
        let carried = resident(held).expect("carried over");
        // Free bytes moved by more than the drift (here 1 GiB, so that RSS alone does not end the reuse).
        let freed_less = resident(ArenasHeld { free: held.free - (2 << 30), ..held }).expect("counted again");
        let new_arena = resident(ArenasHeld { systems: 8, ..held }).expect("counted again");
        release.send(()).ok();
        writer.join().expect("writer");
        assert_eq!(carried, first);
        // Other tests' arenas grow and shrink meanwhile (by 17 MiB seen under load): the 64
        // MiB written shows within 32 MiB, where a count carried over would show none of it.
        assert!(freed_less + (32 << 20) >= first + (64 << 20), "{first} then {freed_less}");
        assert!(new_arena + (32 << 20) >= first + (64 << 20), "{first} then {new_arena}");
    }

    /// Another process's heaps are counted in its pagemap: for this process, what mincore
    /// counts, page for page, over a block half of whose pages were written.
    #[test]
    fn pagemap_counts_resident_pages_as_mincore_does() {
        let page = page_size();
        let length = (1000 * page) as usize;
        // A mapping of its own, not a Vec: malloc may serve a Vec from a heap whose pages are
        // already resident (after other tests raised its mmap threshold) or clear it all,
        // and a huge page would make every page of 2 MiB resident at the first write.
        // SAFETY: a fresh private anonymous mapping, asked of the kernel and unmapped below.
        let block = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(block, libc::MAP_FAILED);
        // SAFETY: advice on the mapping made above.
        assert_eq!(unsafe { libc::madvise(block, length, libc::MADV_NOHUGEPAGE) }, 0);
        for offset in (0..length).step_by(2 * page as usize) {
            // SAFETY: inside the mapping, which is readable and writable and this test's alone.
            unsafe { block.cast::<u8>().add(offset).write_volatile(1) };
        }
        let start = block as u64;
        let end = start + length as u64;
        let pagemap = File::open(format!("/proc/{}/pagemap", std::process::id())).expect("pagemap");
        let by_pagemap = resident_by_pagemap(&pagemap, start, end, page).expect("pagemap read");
        let by_mincore = resident_in(start, end, page);
        // SAFETY: the mapping made above, no longer used.
        assert_eq!(unsafe { libc::munmap(block, length) }, 0);
        assert_eq!(by_pagemap, by_mincore);
        assert_eq!(by_pagemap, 500 * page);
    }

    /// A walk is reused while it is young and RSS holds; no reuse asked for, or an expired
    /// one, walks again (age 0). Other tests move RSS meanwhile, hence the wide drift here.
    #[test]
    fn a_moment_reuses_the_last_rollup_walk_while_rss_holds() {
        let _turn = walks_in_turn();
        let first = reading_reusing(None, None).expect("a walk");
        assert_eq!(first.rollup_age, Some(0.0));
        let reuse = Reuse { max_age: Duration::from_secs(60), rss_drift: 1 << 30 };
        let again = reading_reusing(Some(reuse), None).expect("a reading");
        assert!(again.rollup_age.is_some_and(|age| age > 0.0), "{again:?}");
        assert_eq!(again.pss, first.pss);
        let expired = Reuse { max_age: Duration::ZERO, ..reuse };
        assert_eq!(reading_reusing(Some(expired), None).expect("a reading").rollup_age, Some(0.0));
        let minute = Duration::from_secs(60);
        let mib = 1 << 20;
        assert!(MOMENT_REUSE.allows(Duration::from_secs(59), 100 * mib, 100 * mib + mib / 2));
        assert!(!MOMENT_REUSE.allows(minute, 100 * mib, 100 * mib), "too old");
        assert!(!MOMENT_REUSE.allows(Duration::ZERO, 100 * mib, 102 * mib), "moved by 2 MiB");
        assert!(MOMENT_REUSE.allows(Duration::ZERO, 2000 * mib, 2015 * mib), "under 1% of 2 GiB");
    }

    #[test]
    fn another_process_uss_is_read_like_our_own() {
        let uss = reading_of(std::process::id(), false).expect("own smaps_rollup by pid").uss.expect("uss");
        let _turn = walks_in_turn();
        let pss = reading_reusing(None, None).expect("own smaps_rollup").pss.expect("pss");
        assert!(uss > 0 && uss <= pss + (64 << 20), "uss {uss} pss {pss}");
        assert!(reading_of(u32::MAX, false).is_err());
    }

    #[test]
    fn counts_heaps_by_their_64_mib_alignment() {
        let smaps = "\
55d000000000-55d000100000 rw-p 00000000 00:00 0                          [heap]\n\
Rss:                 800 kB\n\
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n\
Size:                132 kB\n\
Rss:                 100 kB\n\
7f0000021000-7f0004000000 ---p 00000000 00:00 0 \n\
Rss:                   0 kB\n\
7f0004000000-7f0008000000 rw-p 00000000 00:00 0 \n\
Rss:               65536 kB\n\
7f0008000000-7f0008400000 rw-p 00000000 00:00 0 \n\
Rss:                1024 kB\n\
7f0008400000-7f000c000000 ---p 00000000 00:00 0 \n\
7f000c000000-7f000c001000 r--p 00000000 08:01 42                         /usr/lib/libc.so.6\n\
Rss:                   4 kB\n\
7f0010000000-7f0010200000 rw-p 00000000 00:00 0 \n\
Rss:                2048 kB\n\
7f0014000000-7f0018400000 rw-p 00000000 00:00 0 \n\
Rss:               66560 kB\n\
7f0018400000-7f001c000000 ---p 00000000 00:00 0 \n\
Rss:                   0 kB\n";
        // The brk heap; a grown-out heap, a fully used one, a third one; then a file and
        // a plain anonymous mapping, which is no heap; then a full heap merged with the
        // start of the next into one mapping, with that one's reserve after it: two heaps.
        let heaps = arena_heaps(smaps, |m| m.rss);
        assert_eq!(heaps.mappings, 5);
        assert_eq!(heaps.resident, (800 + 100 + 65536 + 1024 + 66560) * 1024);
    }

    #[test]
    fn rollup_gives_pss_uss_swap_and_what_is_shared() {
        let rollup = "\
55d000000000-7ffd00000000 ---p 00000000 00:00 0                          [rollup]\n\
Rss:              300000 kB\n\
Pss:              200000 kB\n\
Shared_Clean:     100000 kB\n\
Shared_Dirty:      30000 kB\n\
Private_Clean:     20000 kB\n\
Private_Dirty:    150000 kB\n\
Swap:                 12 kB\n";
        let d = parse_rollup(rollup).expect("rollup");
        assert_eq!((d.pss, d.uss, d.swap), (200_000 * 1024, 170_000 * 1024, 12 * 1024));
        let k = |kib: u64| kib * 1024;
        assert_eq!(
            d.shared,
            Sharing {
                shared_clean: k(100_000),
                shared_dirty: k(30_000),
                private_clean: k(20_000),
                private_dirty: k(150_000)
            }
        );
        assert!(parse_rollup("Rss: 1 kB\n").is_err());
    }
}
