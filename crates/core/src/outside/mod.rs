//! Another running process's memory, allocator, glibc arenas and verdict, read from
//! outside: /proc/PID only, its mem file included. The target is never attached to,
//! signalled or stopped, none of its locks is taken and nothing runs inside it; what
//! only the process itself can know (its Ruby heap, its history) is said to be unknown.

pub mod glibc_arenas;
pub mod libc_file;
pub mod process_memory;

use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::allocator::Kind;
use crate::arena_stats::{ArenaStats, GlibcArenas};
use crate::cgroup::{self, Cgroup};
use crate::diagnosis::{ArenaCap, Diagnosis, Figures, Phase};
use crate::malloc_info::MallocInfo;
use crate::procfs::{self, MemoryReading};
use crate::thresholds::Thresholds;
use crate::trend::{Sample, Trend};
use glibc_arenas::{Failure, Layout, Target};
use process_memory::ProcessMemory;

/// What a reading from outside gives: the same readings as the process's own, and what
/// could not be known.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub pid: u32,
    pub command: String,
    pub memory: MemoryReading,
    pub stats: ArenaStats,
    pub cgroup: Cgroup,
    pub diagnosis: Diagnosis,
    /// This reading as a point of the trend, for the next (`--watch`).
    pub sample: Sample,
    /// Arenas (by index) whose lists changed under every read: their figures are not exact.
    pub moving: Vec<u64>,
    /// How main_arena was found, or why the arenas could not be read.
    pub arenas_found: String,
    /// What cannot be read from outside, said once each.
    pub unknown: Vec<String>,
}

/// Why a process could not be read at all. Each has its own exit code in the command.
#[derive(Debug)]
pub enum Refusal {
    NoSuchProcess(u32),
    /// It ended while being read.
    Exited(u32),
    Zombie(u32),
    KernelThread(u32),
    /// The caller may not read it: another user's process, or a host that restricts ptrace.
    NotPermitted {
        pid: u32,
        detail: String,
    },
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSuchProcess(pid) => write!(f, "no process {pid}"),
            Refusal::Exited(pid) => write!(f, "process {pid} exited while it was being read"),
            Refusal::Zombie(pid) => write!(f, "process {pid} is a zombie: it has exited and holds no memory"),
            Refusal::KernelThread(pid) => write!(f, "process {pid} is a kernel thread: it has no user memory"),
            Refusal::NotPermitted { pid, detail } => write!(
                f,
                "not permitted to read process {pid} ({detail}): run as the same user as the process, or with \
                 CAP_SYS_PTRACE (sudo); in Docker, run it inside the container (docker exec) or add --cap-add \
                 SYS_PTRACE, or --pid=container:NAME for a sidecar"
            ),
            Refusal::Other(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for Refusal {}

/// PF_KTHREAD in /proc/PID/stat's flags (field 9).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Reads process `pid` now and judges it with `thresholds`; `history`: this command's
/// earlier samples of it (`--watch`), oldest first, for the trend.
pub fn read(pid: u32, thresholds: &Thresholds, history: &[Sample]) -> Result<Report, Refusal> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|error| refusal_of(pid, error, false))?;
    // From here on the process was there: a read that fails because it is gone means it exited.
    let refusal = |error: io::Error| refusal_of(pid, error, true);
    let command = stat.find('(').zip(stat.rfind(')')).map_or(String::new(), |(a, b)| stat[a + 1..b].to_owned());
    match procfs::stat_field(&stat, 3) {
        Some("Z") | Some("X") => return Err(Refusal::Zombie(pid)),
        _ => {}
    }
    let flags: u64 = procfs::stat_field(&stat, 9).and_then(|f| f.parse().ok()).unwrap_or(0);
    if flags & PF_KTHREAD != 0 {
        return Err(Refusal::KernelThread(pid));
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).map_err(refusal)?;
    let mappings = procfs::parse_mappings(&maps);
    let kind = allocator_of(&mappings);
    let memory = procfs::reading_of(pid, kind == Some(Kind::Glibc)).map_err(refusal)?;
    let mut unknown = vec!["the Ruby heap and its GC (only the process itself knows them)".to_owned()];
    let mut moving = Vec::new();
    let (stats, arenas_found) = match kind {
        None => (stats_without_arenas(Kind::Glibc, "none (no libc mapped: a static binary?)", memory.rss), {
            unknown.push("the allocator: no C library is mapped, and a static allocator has no mapping to name".into());
            "no libc mapped: a static binary; its memory is shown, its allocator cannot be read".to_owned()
        }),
        Some(Kind::Glibc) => match glibc(pid, &mappings, memory.rss) {
            Ok((stats, found, moved, mmap_known)) => {
                moving = moved;
                if !mmap_known {
                    unknown.push("glibc's mmapped chunks (its mp_ was not found): counted as 0".into());
                }
                (stats, found)
            }
            Err(Failure::Io(error)) => return Err(refusal(error)),
            Err(Failure::Refused(why)) => {
                unknown.push(format!("glibc's arenas: {why}"));
                (stats_without_arenas(Kind::Glibc, &version_of(pid, &mappings), memory.rss), why)
            }
        },
        Some(other) => {
            unknown.push(format!("{}'s own statistics (read inside the process only)", other.name()));
            let why = format!("{} serves malloc: glibc's arenas are not in use", other.name());
            (stats_without_arenas(other, "unknown", memory.rss), why)
        }
    };
    let cgroup = cgroup_of(pid, kind == Some(Kind::Glibc));
    let figures = Figures::of(&stats, &memory, None, thresholds);
    let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64());
    let sample = Sample { time, rss: figures.rss, malloc_in_use: figures.malloc_in_use, ruby_heap: None };
    let series: Vec<Sample> = history.iter().copied().chain([sample]).collect();
    // Watched long enough, steady and growing tell apart; a single reading knows no history.
    let trend = Trend::of(&series);
    let phase = if trend.is_some() { Phase::Warm { boot_in_use: None } } else { Phase::Snapshot };
    let diagnosis = Diagnosis::judge(&figures, thresholds, trend, phase, ArenaCap::of(&cgroup), time);
    Ok(Report { pid, command, memory, stats, cgroup, diagnosis, sample, moving, arenas_found, unknown })
}

/// What a failed read means: no right to read, or a process that is not (or no longer) there.
fn refusal_of(pid: u32, error: io::Error, seen: bool) -> Refusal {
    // A process that has exited but not been waited for stays in /proc as a zombie, and
    // its mem file then reads nothing.
    let gone = error.raw_os_error() == Some(libc::ESRCH)
        || fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| matches!(procfs::stat_field(&stat, 3), Some("Z" | "X")));
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Refusal::NotPermitted { pid, detail: error.to_string() },
        _ if gone && seen => Refusal::Exited(pid),
        _ if gone => Refusal::NoSuchProcess(pid),
        _ => Refusal::Other(format!("reading process {pid}: {error}")),
    }
}

/// The malloc a process's mappings name: a preloaded or linked jemalloc, tcmalloc or
/// mimalloc, else glibc where libc is mapped; None for a static binary.
fn allocator_of(mappings: &[procfs::Mapping<'_>]) -> Option<Kind> {
    let named = |needle: &str| {
        mappings
            .iter()
            .filter_map(|m| m.path)
            .any(|path| path.rsplit('/').next().is_some_and(|n| n.starts_with(needle)))
    };
    [("libjemalloc", Kind::Jemalloc), ("libtcmalloc", Kind::Tcmalloc), ("libmimalloc", Kind::Mimalloc)]
        .into_iter()
        .find_map(|(needle, kind)| named(needle).then_some(kind))
        .or_else(|| mappings.iter().filter_map(|m| m.path).any(libc_file::is_libc).then_some(Kind::Glibc))
}

fn libc_path<'a>(mappings: &[procfs::Mapping<'a>]) -> Option<&'a str> {
    mappings.iter().filter_map(|m| m.path).find(|path| libc_file::is_libc(path))
}

fn version_of(pid: u32, mappings: &[procfs::Mapping<'_>]) -> String {
    libc_path(mappings).and_then(|path| libc_file::read(pid, path).ok()).map_or("unknown".into(), |libc| libc.version)
}

fn stats_without_arenas(kind: Kind, version: &str, rss: u64) -> ArenaStats {
    ArenaStats { allocator: kind, allocator_version: version.to_owned(), rss, glibc: None, jemalloc: None }
}

/// glibc's arenas: the stats, how main_arena was found, the arenas that kept moving, and
/// whether the mmapped chunks were read.
fn glibc(
    pid: u32,
    mappings: &[procfs::Mapping<'_>],
    rss: u64,
) -> Result<(ArenaStats, String, Vec<u64>, bool), Failure> {
    let path = libc_path(mappings).ok_or_else(|| Failure::Refused("no libc mapped".into()))?;
    let libc = libc_file::read(pid, path)?;
    let layout = Layout::for_version(&libc.version).ok_or_else(|| {
        Failure::Refused(format!(
            "glibc {} is not one whose layout this reader knows ({})",
            libc.version,
            glibc_arenas::SUPPORTED
        ))
    })?;
    let memory = ProcessMemory::of(pid)?;
    let target = target(&memory, layout, mappings, path);
    let (ring, found) = match target.heap_arena()? {
        Some(start) => {
            (target.ring_from(start)?, "found from an arena heap, by following glibc's list of arenas".into())
        }
        None => {
            let (main, found) = main_arena_without_a_heap(pid, &libc, &target)?;
            (target.ring_from(main)?, found)
        }
    };
    let mut info = MallocInfo::default();
    let mut moving = Vec::new();
    for (index, &arena) in ring.iter().enumerate() {
        let (arena_info, moved) = target.arena(index as u64, arena, index == 0)?;
        if moved {
            moving.push(index as u64);
        }
        info.arenas.push(arena_info);
    }
    let mmap = target.mmapped()?;
    (info.mmap_count, info.mmap_bytes) = mmap.unwrap_or((0, 0));
    let stats = ArenaStats {
        allocator: Kind::Glibc,
        allocator_version: libc.version,
        rss,
        glibc: Some(GlibcArenas::of(&info, procfs::page_size())),
        jemalloc: None,
    };
    Ok((stats, found, moving, mmap.is_some()))
}

fn hex(bytes: &Option<Vec<u8>>) -> String {
    bytes.as_ref().map_or("unknown".into(), |bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn target<'a>(memory: &'a ProcessMemory, layout: Layout, mappings: &[procfs::Mapping<'_>], libc: &str) -> Target<'a> {
    let (libc_span, libc_data) = libc_image(mappings, libc).unwrap_or_default();
    let mut brk_heap = None;
    let mut anonymous = Vec::new();
    for m in mappings {
        if m.path == Some("[heap]") {
            brk_heap = Some(m.start..m.end);
        } else if m.path.is_none() && m.perms.starts_with("rw") {
            anonymous.push(m.start..m.end);
        }
    }
    Target { memory, layout, libc: libc_span, libc_data, brk_heap, anonymous }
}

/// libc as the loader mapped it: the address-contiguous run of its file's mappings that holds
/// its code, with its .bss (the anonymous mapping right after), and the run's writable parts.
/// The same file may be mapped elsewhere too: a Rust panic's backtrace maps it whole, for a
/// moment, to read its symbols; taken for libc's start, that put main_arena 30 MB off.
fn libc_image(mappings: &[procfs::Mapping<'_>], libc: &str) -> Option<(Range<u64>, Vec<Range<u64>>)> {
    let is_libc = |m: &procfs::Mapping<'_>| m.path == Some(libc);
    let code = mappings.iter().position(|m| is_libc(m) && m.perms.contains('x'))?;
    let mut first = code;
    while first > 0 && is_libc(&mappings[first - 1]) && mappings[first - 1].end == mappings[first].start {
        first -= 1;
    }
    let mut last = code;
    while let Some(next) = mappings.get(last + 1) {
        let bss = next.path.is_none() && is_libc(&mappings[last]);
        if mappings[last].end != next.start || !(is_libc(next) || bss) {
            break;
        }
        last += 1;
    }
    let image = &mappings[first..=last];
    let data = image.iter().filter(|m| m.perms.starts_with("rw")).map(|m| m.start..m.end).collect();
    Some((mappings[first].start..mappings[last].end, data))
}

/// main_arena of a process with no arena heap to start from, and how it was found: at the
/// offset it has in this command's own libc where both map the same build, else from the
/// build's debug symbols (libc6-dbg); otherwise a refusal saying what was tried.
fn main_arena_without_a_heap(
    pid: u32,
    libc: &libc_file::LibcFile,
    target: &Target<'_>,
) -> Result<(u64, String), Failure> {
    let build = hex(&libc.build_id);
    let own = match own_main_arena(libc, target)? {
        Ok(main) => {
            return Ok((
                main,
                format!("main_arena at the offset it has in this command's own libc (same build-id {build})"),
            ))
        }
        Err(why) => why,
    };
    let symbols = libc.build_id.as_deref().and_then(libc_file::debug_file_path).unwrap_or_default();
    match libc.build_id.as_deref().and_then(|id| libc_file::debug_symbol_offset(pid, id, "main_arena")) {
        Some(offset) => Ok((target.libc.start + offset, format!("main_arena from the debug symbols in {symbols}"))),
        None => Err(Failure::Refused(format!(
            "the process has only its main arena, and no heap to find it from; tried this command's own libc ({own}) \
             and debug symbols for build-id {build} (none with main_arena at {symbols}, in the process's root or \
             ours: install libc6-dbg of the process's glibc to read it)"
        ))),
    }
}

/// main_arena at the offset from libc's first mapping it has in this command's own
/// process, where a thread of ours makes a second arena; Ok(Err(why)) where our libc is
/// not the same build.
fn own_main_arena(libc: &libc_file::LibcFile, other: &Target<'_>) -> Result<Result<u64, String>, Failure> {
    let own_pid = std::process::id();
    let own_maps = fs::read_to_string("/proc/self/maps")?;
    let Some(own_path) = libc_path(&procfs::parse_mappings(&own_maps)).map(str::to_owned) else {
        return Ok(Err("it maps no libc".into()));
    };
    let own_libc = libc_file::read(own_pid, &own_path)?;
    if own_libc.build_id.is_none() || own_libc.build_id != libc.build_id {
        return Ok(Err(format!("build-id {}, not the same build", hex(&own_libc.build_id))));
    }
    let own_memory = ProcessMemory::of(own_pid)?;
    let (sender, receiver) = std::sync::mpsc::channel::<()>();
    let (made, wait) = std::sync::mpsc::channel::<()>();
    // A thread of ours that allocates gets an arena of its own (under glibc's cap), held
    // until the ring is read.
    let holder = std::thread::spawn(move || {
        let block = std::hint::black_box(vec![1u8; 4096]);
        made.send(()).ok();
        receiver.recv().ok();
        drop(block);
    });
    wait.recv().ok();
    // Read after the thread has made its arena's heap.
    let own_maps = fs::read_to_string("/proc/self/maps")?;
    let own = target(&own_memory, other.layout, &procfs::parse_mappings(&own_maps), &own_path);
    let main = own.heap_arena().and_then(|start| match start {
        Some(start) => own.ring_from(start).map(|ring| ring[0]),
        None => Err(Failure::Refused("this command's own thread made no arena heap to learn main_arena from".into())),
    });
    sender.send(()).ok();
    holder.join().ok();
    let offset = main? - own.libc.start;
    Ok(Ok(other.libc.start + offset))
}

/// The target's cgroup, and glibc's arena cap from its environment where it may be read.
fn cgroup_of(pid: u32, glibc: bool) -> Cgroup {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let env = |name: &str| {
        environ.split(|&b| b == 0).find_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            entry.strip_prefix(name)?.strip_prefix('=').map(str::to_owned)
        })
    };
    let online = cgroup::online_cpus();
    let cap = glibc.then(|| cgroup::arena_cap(env("MALLOC_ARENA_MAX"), env("GLIBC_TUNABLES"), online));
    cgroup::read_from(Path::new("/sys/fs/cgroup"), &own, online, cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{glibc, malloc_info};
    use std::sync::mpsc;

    /// Threads that each fragment an arena of their own (keeping one block in ten of 8–32
    /// KiB) and hold it until told.
    fn fragmented_arenas(threads: usize) -> (Vec<std::thread::JoinHandle<()>>, mpsc::Sender<()>) {
        let (ready, started) = mpsc::channel::<()>();
        let (release, hold) = mpsc::channel::<()>();
        let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
        let workers = (0..threads)
            .map(|seed| {
                let (ready, hold) = (ready.clone(), hold.clone());
                std::thread::spawn(move || {
                    let blocks: Vec<Vec<u8>> =
                        (0..300).map(|i| vec![1u8; 8192 + (i * 7919 + seed * 131) % 24576]).collect();
                    let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(10).collect();
                    ready.send(()).ok();
                    let _ = hold.lock().map(|hold| hold.recv());
                    std::hint::black_box(kept);
                })
            })
            .collect();
        for _ in 0..threads {
            started.recv().expect("a fragmenting thread");
        }
        (workers, release)
    }

    #[test]
    fn this_process_read_from_outside_agrees_with_its_own_malloc_info() {
        let (workers, release) = fragmented_arenas(8);
        let own = || malloc_info::parse(&glibc::malloc_info_xml().expect("malloc_info")).expect("parse");
        let before = own();
        let report = read(std::process::id(), &Thresholds::default(), &[]).expect("read from outside");
        let after = own();
        for _ in &workers {
            release.send(()).ok();
        }
        workers.into_iter().for_each(|w| w.join().expect("worker"));
        let glibc = report.stats.glibc.expect("glibc arenas read");
        // Other tests make arenas meanwhile (a new one takes the place after main and moves
        // the others on), and they and the reading thread allocate as it reads; the held
        // arenas do not move: each must be read from outside as malloc_info gave it.
        let count = glibc.arena_count as usize;
        assert!(before.arenas.len() <= count && count <= after.arenas.len(), "{}", report.arenas_found);
        let page = procfs::page_size();
        let figures = |arena: crate::malloc_info::Arena| crate::malloc_info::Arena { index: 0, ..arena };
        let outside: Vec<_> = glibc.arenas.iter().map(|&arena| figures(arena)).collect();
        let mut compared = 0;
        // The held arenas are the ones of 4 MiB or more that malloc_info gave alike before and after.
        let held = |a: &&malloc_info::ArenaInfo| {
            a.system_current >= 4 << 20
                && after.arenas.iter().any(|b| b.free_chunks == a.free_chunks && b.system_current == a.system_current)
        };
        for held in before.arenas.iter().filter(held) {
            let expected = figures(held.summary(page));
            let at = outside.iter().position(|arena| *arena == expected);
            let at = at.unwrap_or_else(|| panic!("{expected:?} not among {outside:#?}"));
            // Other threads' arenas may move under the walk; a held one never does.
            assert!(!report.moving.contains(&(at as u64)), "held arena {at} read as moving");
            compared += 1;
        }
        assert!(compared >= 6, "only {compared} of 8 arenas held still");
        assert_eq!(report.stats.allocator, Kind::Glibc);
        assert!(report.memory.pss.is_some() && report.memory.arena_resident.is_some());
    }

    #[test]
    fn libc_is_the_run_that_holds_its_code_not_another_mapping_of_its_file() {
        // The maps of a CI run where a panic's backtrace had mapped libc whole, below it.
        let maps = "\
7f599c7dc000-7f599c9b3000 r--p 00000000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e4ad000-7f599e4b0000 rw-p 00000000 00:00 0
7f599e4b0000-7f599e4d6000 r--p 00000000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e4d6000-7f599e62c000 r-xp 00026000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e62c000-7f599e67f000 r--p 0017c000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e67f000-7f599e683000 r--p 001cf000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e683000-7f599e685000 rw-p 001d3000 fe:00 326279 /usr/lib/x86_64-linux-gnu/libc.so.6
7f599e685000-7f599e692000 rw-p 00000000 00:00 0
7f599e692000-7f599e693000 r--p 00000000 fe:00 316536 /usr/lib/locale/C.utf8/LC_MEASUREMENT
7f599e69b000-7f599e69d000 rw-p 00000000 00:00 0
";
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let (span, data) = libc_image(&procfs::parse_mappings(maps), libc).expect("libc's image");
        assert_eq!(span, 0x7f599e4b0000..0x7f599e692000);
        assert_eq!(data, vec![0x7f599e683000..0x7f599e685000, 0x7f599e685000..0x7f599e692000]);
        assert_eq!(libc_image(&procfs::parse_mappings(&maps.replace("r-xp", "r--p")), libc), None);
    }

    #[test]
    fn main_arena_from_debug_symbols_is_where_our_own_libc_puts_it() {
        // `sleep` makes no thread: its main arena is all it has, and no heap leads to it.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();
        // Its maps once it sleeps, its loader done. (The CI runs that found libc's start off
        // had read this test process's own maps while a panic's backtrace mapped libc.)
        let asleep = || {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            procfs::stat_field(&stat, 3) == Some("S")
        };
        let maps = (0..300)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                if asleep() {
                    fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .find(|maps| maps.contains("bin/sleep") && maps.contains("libc"))
            .expect("sleep's maps");
        let mappings = procfs::parse_mappings(&maps);
        let path = libc_path(&mappings).expect("sleep maps libc");
        let libc = libc_file::read(pid, path).expect("its libc");
        let memory = ProcessMemory::of(pid).expect("its memory");
        let target = target(&memory, Layout::for_version(&libc.version).expect("a known layout"), &mappings, path);
        let ours = own_main_arena(&libc, &target).expect("our own libc read").expect("the same libc build as ours");
        let build = libc.build_id.clone().expect("a build-id");
        let symbols = libc_file::debug_symbol_offset(pid, &build, "main_arena").unwrap_or_else(|| {
            panic!("no main_arena in {:?}: bin/setup installs libc6-dbg", libc_file::debug_file_path(&build))
        });
        let ring = target.ring_from(target.libc.start + symbols);
        child.kill().ok();
        child.wait().ok();
        assert_eq!(target.libc.start + symbols, ours, "debug symbols and our own libc disagree; its maps:\n{maps}");
        assert_eq!(ring.expect("the ring from main_arena").len(), 1);
        assert_eq!(libc_file::debug_symbol_offset(pid, &[0xab; 20], "main_arena"), None);
    }

    #[test]
    fn a_process_that_exits_while_it_is_read_is_named_so() {
        // Short-lived processes read again and again until they are gone: some end between
        // one file of /proc and the next, which must read as exited, never as another error.
        let mut exited = 0;
        for round in 0..200u32 {
            let life = format!("0.00{}", round % 10);
            let mut child = std::process::Command::new("sleep").arg(life).spawn().expect("sleep");
            let pid = child.id();
            for _ in 0..1000 {
                match read(pid, &Thresholds::default(), &[]) {
                    Ok(_) => continue,
                    Err(Refusal::Exited(_)) => exited += 1,
                    Err(Refusal::Zombie(_) | Refusal::NoSuchProcess(_)) => {}
                    Err(other) => panic!("process {pid} ending read as {other:?}"),
                }
                break;
            }
            child.wait().expect("sleep ends");
            if exited >= 3 {
                return;
            }
        }
        panic!("in 200 short-lived processes only {exited} ended in the middle of a read");
    }

    #[test]
    fn a_process_that_does_not_exist_is_named() {
        let refusal = read(u32::MAX - 1, &Thresholds::default(), &[]).expect_err("no such process");
        assert!(matches!(refusal, Refusal::NoSuchProcess(_)), "{refusal:?}");
        assert_eq!(refusal.to_string(), format!("no process {}", u32::MAX - 1));
    }

    #[test]
    fn a_kernel_thread_is_refused() {
        // kthreadd is pid 2 where the kernel's threads are visible, which they are not in a
        // container's own PID namespace (bin/test-stack runs with the host's).
        let stat = fs::read_to_string("/proc/2/stat").expect("pid 2, kthreadd: in a container, run with --pid=host");
        assert!(stat.starts_with("2 (kthreadd) "), "{stat}");
        let refusal = read(2, &Thresholds::default(), &[]).expect_err("a kernel thread");
        assert!(matches!(refusal, Refusal::KernelThread(2)), "{refusal:?}");
    }
}
