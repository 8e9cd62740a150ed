//! One moment of a process's memory: its readings, taken together, and the diagnosis of
//! those very readings. Everything that shows figures and a verdict (the log line, a
//! scrape, the dashboard, stats.json, the trimmer, the guard) takes one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::allocator::{Allocator, Kind};
use crate::arena_stats::{self, ArenaStats};
use crate::cgroup::{self, Cgroup};
use crate::diagnosis::{ArenaCap, Diagnosis, Figures, Phase, RubyHeap};
use crate::procfs::{self, ArenasHeld, MemoryReading};
use crate::thresholds::Thresholds;
use crate::trend::{Sample, Trend};

#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub stats: ArenaStats,
    /// With detail: PSS, USS, swap (from a walk of smaps_rollup up to a minute old, while
    /// RSS holds: see procfs::Reuse) and the arenas' resident bytes.
    pub memory: MemoryReading,
    pub cgroup: Cgroup,
    pub diagnosis: Diagnosis,
}

/// What a moment is judged against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub thresholds: &'a Thresholds,
    /// What only the Ruby process can tell; None elsewhere.
    pub ruby_heap: Option<RubyHeap>,
    /// The samples taken since the warm-up ended, oldest first.
    pub warm: &'a [Sample],
    /// When the warm-up ends (seconds since the epoch): a moment taken after it joins
    /// the trend. None for a single reading with no history.
    pub warm_from: Option<f64>,
    /// Memory in use at the process's first moment, None where this is it.
    pub boot_in_use: Option<u64>,
}

impl Context<'_> {
    fn phase(&self, time: f64) -> Phase {
        match self.warm_from {
            None => Phase::Snapshot,
            Some(from) if time < from => Phase::WarmingUp { boot_in_use: self.boot_in_use },
            Some(_) => Phase::Warm { boot_in_use: self.boot_in_use },
        }
    }
}

/// The readings a moment can fail to take, each with the name the Ruby layer counts its
/// failures under. (A cgroup file that is absent is not a failure: it is left unknown.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    ArenaStats,
    Memory,
    Cgroup,
}

impl Reading {
    pub const ALL: [Reading; 3] = [Reading::ArenaStats, Reading::Memory, Reading::Cgroup];

    pub fn name(self) -> &'static str {
        match self {
            Reading::ArenaStats => "arena_stats",
            Reading::Memory => "memory",
            Reading::Cgroup => "cgroup",
        }
    }
}

/// A reading a moment could not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingFailure {
    pub reading: Reading,
    pub message: String,
}

impl Moment {
    /// Reads this process now and diagnoses what it read.
    pub fn take(allocator: &Allocator, context: Context<'_>) -> Result<Moment, ReadingFailure> {
        let stats =
            arena_stats::read(allocator).map_err(|message| ReadingFailure { reading: Reading::ArenaStats, message })?;
        let memory = procfs::reading_reusing(Some(procfs::MOMENT_REUSE), arenas_held(&stats))
            .map_err(|e| ReadingFailure { reading: Reading::Memory, message: format!("reading /proc/self: {e}") })?;
        let (cgroup, malformed) = cgroup::read_checked(allocator.name == Kind::Glibc);
        if !malformed.is_empty() {
            let message = format!("malformed cgroup files: {}", malformed.join("; "));
            return Err(ReadingFailure { reading: Reading::Cgroup, message });
        }
        Ok(Moment::judge(stats, memory, cgroup, context, now()))
    }

    /// The diagnosis of readings already taken.
    pub fn judge(stats: ArenaStats, memory: MemoryReading, cgroup: Cgroup, context: Context<'_>, time: f64) -> Moment {
        let figures = Figures::of(&stats, &memory, context.ruby_heap, context.thresholds);
        let current =
            Sample { time, rss: figures.rss, malloc_in_use: figures.malloc_in_use, ruby_heap: figures.ruby_heap };
        let phase = context.phase(time);
        let trend = if matches!(phase, Phase::Warm { .. }) {
            let mut warm = context.warm.to_vec();
            warm.push(current);
            Trend::of(&warm)
        } else {
            Trend::of(context.warm)
        };
        let diagnosis = Diagnosis::judge(&figures, context.thresholds, trend, phase, ArenaCap::of(&cgroup), time);
        Moment { stats, memory, cgroup, diagnosis }
    }
}

/// What glibc's arenas hold now (procfs::ArenasHeld); None under another allocator.
pub fn arenas_held(stats: &ArenaStats) -> Option<ArenasHeld> {
    let glibc = stats.glibc.as_ref()?;
    let mut hasher = DefaultHasher::new();
    glibc.arenas.iter().map(|arena| arena.system).collect::<Vec<_>>().hash(&mut hasher);
    Some(ArenasHeld { systems: hasher.finish(), free: glibc.free })
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
