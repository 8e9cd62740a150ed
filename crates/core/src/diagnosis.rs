//! The verdict's rules: why a process holds its memory, from one moment's readings. The
//! figures a verdict stands on, the verdict, a paragraph saying what it means here, and
//! remedies, best first. The gem (BloatProbe.diagnose, the Recorder) and a reader from
//! outside the process give the same readings the same diagnosis.
//!
//! Verdicts, tried in this order:
//! - `arena_fragmentation`: glibc holds free memory (resident, not handed back) of at least
//!   min_bytes and free_share of RSS, spread over at least spread_arenas arenas that each
//!   hold arena_free_bytes or more.
//! - `allocator_retained`: the allocator holds as much free memory, but not spread that
//!   way: glibc in one or two arenas, or jemalloc's dirty and muzzy pages (resident −
//!   allocated).
//! - `native_growth`: since the warm-up, memory in use has grown at growth_per_hour or more,
//!   by min_growth bytes at least: a leak, or a cache without a bound. In a Ruby process,
//!   by min_growth more than its GC's malloc limit: garbage Ruby has malloc'd rises that
//!   far before a collection frees it, and a line drawn between two collections is that
//!   rise, not growth.
//! - `ruby_heap_growth`: the same for Ruby's object heap.
//! - `ruby_heap`: Ruby's object heap (GC.stat pages) is min_bytes and bulk_share of RSS or
//!   more.
//! - `unmeasured`: tcmalloc or mimalloc: what they hold free cannot be read.
//! - `live_native`: no trend yet tells whether memory in use is steady, and it is large:
//!   what it has grown by since the process's first moment is min_bytes and bulk_share of
//!   RSS or more (a single reading with no history, which knows no first moment, weighs
//!   memory in use itself). Once the trend shows it steady, the process is `healthy`, "a
//!   steady working set".
//! - `warming_up`: during the warm-up, none of the above: caches fill, threads meet their
//!   first requests, and no trend can be drawn yet.
//! - `healthy`: none of these.

use crate::allocator::Kind;
use crate::arena_stats::{ArenaStats, GlibcArenas};
use crate::cgroup::Cgroup;
use crate::format::bytes as size;
use crate::procfs::MemoryReading;
use crate::reading;
use crate::schema::Unit::{Bytes, Count, Name, Reading, Seconds, Text, Texts};
use crate::schema::{FieldValue, Value};
use crate::thresholds::Thresholds;
use crate::trend::{Series, Trend};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    ArenaFragmentation,
    AllocatorRetained,
    NativeGrowth,
    RubyHeapGrowth,
    RubyHeap,
    LiveNative,
    Unmeasured,
    WarmingUp,
    Healthy,
}

impl Verdict {
    pub const ALL: [Verdict; 9] = [
        Verdict::ArenaFragmentation,
        Verdict::AllocatorRetained,
        Verdict::NativeGrowth,
        Verdict::RubyHeapGrowth,
        Verdict::RubyHeap,
        Verdict::LiveNative,
        Verdict::Unmeasured,
        Verdict::WarmingUp,
        Verdict::Healthy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::ArenaFragmentation => "arena_fragmentation",
            Verdict::AllocatorRetained => "allocator_retained",
            Verdict::NativeGrowth => "native_growth",
            Verdict::RubyHeapGrowth => "ruby_heap_growth",
            Verdict::RubyHeap => "ruby_heap",
            Verdict::LiveNative => "live_native",
            Verdict::Unmeasured => "unmeasured",
            Verdict::WarmingUp => "warming_up",
            Verdict::Healthy => "healthy",
        }
    }

    /// Memory the allocator holds free, which a trim (glibc) or a purge (jemalloc) hands
    /// back to the system.
    pub fn freeable(self) -> bool {
        matches!(self, Verdict::ArenaFragmentation | Verdict::AllocatorRetained)
    }
}

impl FieldValue for Verdict {
    fn value(&self) -> Value<'_> {
        Value::Name(self.name())
    }
}

/// Ruby's object heap, which only the Ruby process itself can read (GC.stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RubyHeap {
    pub bytes: u64,
    /// Ruby 3.1 takes its heap pages from malloc (posix_memalign), so they are part of
    /// malloc's in-use bytes; Ruby 3.2+ maps them with mmap.
    pub in_malloc: bool,
    /// How far the bytes Ruby mallocs may rise before its GC runs (the larger of GC.stat's
    /// malloc_increase_bytes_limit and oldmalloc_increase_bytes_limit).
    pub gc_malloc_limit: u64,
}

/// What a verdict stands on, worked out from one moment's readings. None where it cannot
/// be told: glibc's spread and trim estimate under jemalloc; all of it under tcmalloc or
/// mimalloc; the Ruby heap from outside the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub allocator: Kind,
    pub allocator_version: String,
    pub rss: u64,
    pub pss: Option<u64>,
    pub uss: Option<u64>,
    /// Malloc'd and not freed: glibc's arenas and mmapped chunks, or jemalloc's allocated;
    /// the Ruby heap's pages left out where Ruby takes them from malloc.
    pub malloc_in_use: Option<u64>,
    /// Free memory the allocator holds that is still resident: glibc's free chunks capped
    /// by the arenas' resident bytes less what is in use (pages a trim already returned
    /// stay in the free lists), or jemalloc's resident less allocated.
    pub free: Option<u64>,
    /// What malloc_trim(0) would hand back: the free chunks' whole pages, capped as free is.
    pub trimmable: Option<u64>,
    pub arena_count: Option<u64>,
    pub arenas_holding_free: Option<u64>,
    pub ruby_heap: Option<u64>,
    /// RubyHeap::gc_malloc_limit; None outside a Ruby process.
    pub ruby_gc_malloc_limit: Option<u64>,
}

impl Figures {
    pub fn of(
        stats: &ArenaStats,
        memory: &MemoryReading,
        ruby_heap: Option<RubyHeap>,
        thresholds: &Thresholds,
    ) -> Self {
        let mut figures = Figures {
            allocator: stats.allocator,
            allocator_version: stats.allocator_version.clone(),
            rss: memory.rss,
            pss: memory.pss,
            uss: memory.uss,
            malloc_in_use: None,
            free: None,
            trimmable: None,
            arena_count: stats.glibc.as_ref().map(|glibc| glibc.arena_count),
            arenas_holding_free: None,
            ruby_heap: ruby_heap.map(|heap| heap.bytes),
            ruby_gc_malloc_limit: ruby_heap.map(|heap| heap.gc_malloc_limit),
        };
        if let Some(GlibcArenas { in_use, free, mmap_bytes: mmap, arenas, .. }) = &stats.glibc {
            let (in_use, free, mmap) = (*in_use, *free, *mmap);
            let resident_free = memory.arena_resident.map_or(free, |resident| resident.saturating_sub(in_use));
            figures.malloc_in_use = Some(in_use + mmap);
            figures.free = Some(free.min(resident_free));
            figures.trimmable = Some(arenas.iter().map(|arena| arena.trimmable).sum::<u64>().min(resident_free));
            let holding = arenas.iter().filter(|arena| arena.free >= thresholds.arena_free_bytes).count();
            figures.arenas_holding_free = Some(holding as u64);
        } else if let Some(jemalloc) = &stats.jemalloc {
            figures.malloc_in_use = Some(jemalloc.allocated);
            figures.free = Some(jemalloc.resident.saturating_sub(jemalloc.allocated));
        }
        if let (Some(in_use), Some(RubyHeap { bytes, in_malloc: true, .. })) = (figures.malloc_in_use, ruby_heap) {
            figures.malloc_in_use = Some(in_use.saturating_sub(bytes));
        }
        figures
    }
}

reading! {
    /// BloatProbe.diagnose: the verdict, the figures it stands on, the trend since the
    /// warm-up (None during it), when it was taken (seconds since the epoch), what it means
    /// and what to do, best first.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Diagnosis as "Diagnosis" {
        verdict: Verdict => Name,
        allocator: String => Text,
        rss: u64 => Bytes,
        pss: Option<u64> => Bytes,
        uss: Option<u64> => Bytes,
        malloc_in_use: Option<u64> => Bytes,
        free: Option<u64> => Bytes,
        trimmable: Option<u64> => Bytes,
        arena_count: Option<u64> => Count,
        arenas_holding_free: Option<u64> => Count,
        ruby_heap: Option<u64> => Bytes,
        ruby_gc_malloc_limit: Option<u64> => Bytes,
        trend: Option<Trend> => Reading(&Trend::SCHEMA),
        taken_at: f64 => Seconds,
        explanation: String => Text,
        remedies: Vec<String> => Texts,
    }
}

/// The container's CPUs against glibc's arena cap, for the remedies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArenaCap {
    pub cap: u64,
    pub container_cpus: u64,
    pub online_cpus: u64,
}

impl ArenaCap {
    /// glibc's cap counts the host's CPUs: a one-CPU container on a 64-core host may make
    /// 512 arenas. Some only where the cap passes 8 × the container's CPUs.
    pub fn of(cgroup: &Cgroup) -> Option<ArenaCap> {
        Self::from_counts(cgroup.cpu_quota, cgroup.cpuset_cpus, cgroup.arena_cap, cgroup.online_cpus)
    }

    /// From a cgroup's CPU quota, cpuset size, glibc's cap and the host's online CPUs.
    pub fn from_counts(
        cpu_quota: Option<f64>,
        cpuset_cpus: Option<u64>,
        arena_cap: Option<u64>,
        online_cpus: u64,
    ) -> Option<ArenaCap> {
        let cpus = cpu_quota.map(|quota| quota.ceil() as u64).or(cpuset_cpus)?;
        let cap = arena_cap?;
        (cap > 8 * cpus).then_some(ArenaCap { cap, container_cpus: cpus, online_cpus })
    }
}

/// Where the process stands against its warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// One reading with no history (BloatProbe.diagnose, a reader from outside): nothing
    /// is known of the process's start.
    Snapshot,
    /// During the warm-up; `boot_in_use`: memory in use at the process's first moment
    /// (None: this is it).
    WarmingUp { boot_in_use: Option<u64> },
    /// After it: the trend, once it has enough samples, tells steady from growth.
    Warm { boot_in_use: Option<u64> },
}

impl Diagnosis {
    pub fn judge(
        figures: &Figures,
        thresholds: &Thresholds,
        trend: Option<Trend>,
        phase: Phase,
        arena_cap: Option<ArenaCap>,
        taken_at: f64,
    ) -> Diagnosis {
        let judge = Judge { figures, thresholds, trend: trend.as_ref(), phase };
        let verdict = judge.verdict();
        Diagnosis {
            verdict,
            allocator: format!("{} {}", figures.allocator.name(), figures.allocator_version),
            rss: figures.rss,
            pss: figures.pss,
            uss: figures.uss,
            malloc_in_use: figures.malloc_in_use,
            free: figures.free,
            trimmable: figures.trimmable,
            arena_count: figures.arena_count,
            arenas_holding_free: figures.arenas_holding_free,
            ruby_heap: figures.ruby_heap,
            ruby_gc_malloc_limit: figures.ruby_gc_malloc_limit,
            trend,
            taken_at,
            explanation: judge.explanation(verdict),
            remedies: judge.remedies(verdict, arena_cap),
        }
    }
}

struct Judge<'a> {
    figures: &'a Figures,
    thresholds: &'a Thresholds,
    trend: Option<&'a Trend>,
    phase: Phase,
}

impl Judge<'_> {
    fn verdict(&self) -> Verdict {
        let figures = self.figures;
        let free = figures.free;
        if free.is_some_and(|free| self.significant(free, self.thresholds.free_share)) {
            let spread = figures.arenas_holding_free.is_some_and(|spread| spread >= self.thresholds.spread_arenas);
            return if spread { Verdict::ArenaFragmentation } else { Verdict::AllocatorRetained };
        }
        if self.growing(Series::InUse) {
            return Verdict::NativeGrowth;
        }
        if self.growing(Series::RubyHeap) {
            return Verdict::RubyHeapGrowth;
        }
        if figures.ruby_heap.is_some_and(|heap| self.significant(heap, self.thresholds.bulk_share)) {
            return Verdict::RubyHeap;
        }
        if free.is_none() {
            return Verdict::Unmeasured;
        }
        // Large and steady since the warm-up is a working set, not a finding; memory a
        // process booted with is its start, not a finding either.
        let grown = self.in_use_since_boot().map(|(in_use, boot)| in_use.saturating_sub(boot.unwrap_or(0)));
        if self.trend.is_none() && grown.is_some_and(|grown| self.significant(grown, self.thresholds.bulk_share)) {
            return Verdict::LiveNative;
        }
        if matches!(self.phase, Phase::WarmingUp { .. }) {
            return Verdict::WarmingUp;
        }
        Verdict::Healthy
    }

    /// Memory in use now, and at the process's first moment where that is known (None in
    /// a single reading; the first moment itself counts as its own start).
    fn in_use_since_boot(&self) -> Option<(u64, Option<u64>)> {
        let in_use = self.figures.malloc_in_use?;
        Some(match self.phase {
            Phase::Snapshot => (in_use, None),
            Phase::WarmingUp { boot_in_use } | Phase::Warm { boot_in_use } => {
                (in_use, Some(boot_in_use.unwrap_or(in_use)))
            }
        })
    }

    /// Rising at growth_per_hour or faster, and by min_growth at least over the trend's span;
    /// memory in use by as much again as Ruby's garbage may lift it before a collection.
    fn growing(&self, series: Series) -> bool {
        let Some(trend) = self.trend else { return false };
        let (Some(rate), Some(grown)) = (trend.per_hour_of(series), trend.grown(series)) else { return false };
        let garbage = match series {
            Series::InUse => self.figures.ruby_gc_malloc_limit.unwrap_or(0),
            Series::RubyHeap => 0,
        };
        rate >= self.thresholds.growth_per_hour as f64 && grown >= (self.thresholds.min_growth + garbage) as f64
    }

    /// At least min_bytes, and at least that share of RSS: a small process is healthy
    /// whatever its proportions.
    fn significant(&self, bytes: u64, share: f64) -> bool {
        bytes >= self.thresholds.min_bytes && bytes as f64 >= share * self.figures.rss as f64
    }

    /// "512 MiB (40% of RSS 1.2 GiB)".
    fn share(&self, bytes: u64) -> String {
        let rss = self.figures.rss;
        let percent = if rss == 0 { 0.0 } else { (100.0 * bytes as f64 / rss as f64).round() };
        format!("{} ({percent:.0}% of RSS {})", size(bytes as f64), size(rss as f64))
    }

    fn explanation(&self, verdict: Verdict) -> String {
        let figures = self.figures;
        let share = |bytes: Option<u64>| self.share(bytes.unwrap_or(0));
        match verdict {
            Verdict::NativeGrowth | Verdict::RubyHeapGrowth => self.growth(verdict),
            Verdict::ArenaFragmentation => format!(
                "glibc holds {} free inside its arenas, {} of which hold {} or more each: memory that threads \
                 freed but that stays with each thread's arena, so RSS follows the sum of every arena's high-water \
                 mark. The allocator, not a leak, is the cause.",
                share(figures.free),
                figures.arenas_holding_free.unwrap_or(0),
                size(self.thresholds.arena_free_bytes as f64)
            ),
            Verdict::AllocatorRetained => format!(
                "The allocator holds {} that the program freed but the allocator has not given back to the system \
                 yet. This is not a leak; the allocator's settings decide when it returns.",
                share(figures.free)
            ),
            Verdict::RubyHeap => format!(
                "Ruby's object heap takes {}: live objects, or pages the GC keeps for them. Changing the allocator \
                 will not shrink it.",
                share(figures.ruby_heap)
            ),
            Verdict::LiveNative => {
                let since = match self.in_use_since_boot() {
                    Some((in_use, Some(boot))) => format!(
                        ", {} more than the {} in use at the process's first moment",
                        size(in_use.saturating_sub(boot) as f64),
                        size(boot as f64)
                    ),
                    _ => String::new(),
                };
                format!(
                    "Memory malloc'd and still in use takes {}{since}: big buffers, the contents of Ruby strings \
                     and arrays, or garbage the GC has not collected yet. The allocator is not wasting it; whether \
                     it is a steady working set or growth, the trend after the warm-up will tell.",
                    share(figures.malloc_in_use)
                )
            }
            Verdict::WarmingUp => format!(
                "The process is warming up: caches fill and threads meet their first requests, so no trend is \
                 drawn yet. So far: {} in use{}, {} free in the allocator, RSS {}; the allocator holds less free \
                 than a finding needs.",
                size(figures.malloc_in_use.unwrap_or(0) as f64),
                match self.in_use_since_boot() {
                    Some((_, Some(boot))) => format!(" ({} at its first moment)", size(boot as f64)),
                    _ => String::new(),
                },
                size(figures.free.unwrap_or(0) as f64),
                size(figures.rss as f64)
            ),
            Verdict::Unmeasured => {
                let heap =
                    figures.ruby_heap.map(|heap| format!("; only the Ruby heap ({}) was measured", size(heap as f64)));
                format!(
                    "bloat_probe could not read what this process's allocator ({}) holds free: tcmalloc and \
                     mimalloc keep no statistics it reads, and from outside a process only glibc's arenas can be \
                     read{}.",
                    figures.allocator.name(),
                    heap.unwrap_or_default()
                )
            }
            Verdict::Healthy => self.healthy(),
        }
    }

    fn growth(&self, verdict: Verdict) -> String {
        let (series, what) = match verdict {
            Verdict::NativeGrowth => (Series::InUse, "Memory in use"),
            _ => (Series::RubyHeap, "Ruby's object heap"),
        };
        let Some(trend) = self.trend else { return String::new() };
        format!(
            "{what} has grown by {} in the last {:.0} s since the warm-up, {} an hour (a line through {} samples): \
             something keeps what it allocates. Changing the allocator will not stop it.",
            size(trend.grown(series).unwrap_or(0.0)),
            trend.seconds.round(),
            size(trend.per_hour_of(series).unwrap_or(0.0)),
            trend.samples
        )
    }

    fn healthy(&self) -> String {
        let steady = match (self.trend, self.figures.malloc_in_use) {
            (Some(trend), Some(in_use)) => format!(
                "A steady working set of {} in use: since the warm-up it has moved {} an hour ({} samples). ",
                size(in_use as f64),
                trend.in_use_per_hour.map_or_else(|| "-".to_string(), size),
                trend.samples
            ),
            _ => String::new(),
        };
        format!(
            "{steady}No bloat: the allocator holds less than {} or {:.0}% of RSS free, and nothing grows.",
            size(self.thresholds.min_bytes as f64),
            (100.0 * self.thresholds.free_share).round()
        )
    }

    fn remedies(&self, verdict: Verdict, arena_cap: Option<ArenaCap>) -> Vec<String> {
        let mut list: Vec<String> = Vec::new();
        if verdict.freeable() && self.figures.allocator == Kind::Glibc {
            if let Some(ArenaCap { cap, container_cpus: cpus, online_cpus }) = arena_cap {
                list.push(format!(
                    "glibc allows {cap} arenas here (8 × the host's {online_cpus} CPUs), while this container has \
                     {cpus} CPU{}: MALLOC_ARENA_MAX={} sizes the cap to the container (2 caps it further)",
                    if cpus > 1 { "s" } else { "" },
                    8 * cpus
                ));
            }
        }
        let trim = self.figures.trimmable.map(|trimmable| {
            format!(
                "malloc_trim(0) would hand back about {} now (estimated from malloc_info's free chunks); \
                 BloatProbe::Trimmer.start(interval: 60) does it periodically",
                size(trimmable as f64)
            )
        });
        let texts: Vec<&str> = match verdict {
            Verdict::ArenaFragmentation => vec![
                "MALLOC_ARENA_MAX=2 in the environment: two arenas for all threads",
                "jemalloc (LD_PRELOAD=libjemalloc.so.2) with MALLOC_CONF=background_thread:true",
            ],
            Verdict::AllocatorRetained if self.figures.allocator == Kind::Jemalloc => vec![
                "MALLOC_CONF=background_thread:true purges freed pages off the request threads, even when idle",
                "MALLOC_CONF=dirty_decay_ms:1000 returns them sooner (the default is 10 s)",
            ],
            Verdict::AllocatorRetained => {
                list.extend(trim.clone());
                vec!["fewer arenas hold less: MALLOC_ARENA_MAX=2 if it is not set"]
            }
            Verdict::NativeGrowth => vec![
                "BloatProbe.attribution names the endpoints and jobs that raised memory; look at what they keep \
                 (caches without a bound, class-level collections, C extensions' buffers)",
                "ObjectSpace.memsize_of_all(String) and a heap dump now and later, for strings and arrays that \
                 accumulate",
            ],
            Verdict::RubyHeapGrowth => {
                vec!["ObjectSpace.dump_all(output: File.open(\"heap.json\", \"w\")) now and later, and compare what grows"]
            }
            Verdict::RubyHeap => vec![
                "ObjectSpace.dump_all(output: File.open(\"heap.json\", \"w\")) and compare two dumps for what grows",
                "GC.compact (Ruby 2.7+) frees pages that hold few live objects",
            ],
            Verdict::LiveNative => vec![
                "find what holds the memory: GC.start, then diagnose again (garbage not yet collected); \
                 ObjectSpace.memsize_of_all(String) and a heap dump for Ruby's strings and arrays; if those are \
                 small, a C extension's buffers or leak",
            ],
            Verdict::Unmeasured => {
                vec!["run once under glibc or jemalloc (LD_PRELOAD=libjemalloc.so.2) to measure what the allocator holds"]
            }
            Verdict::WarmingUp => {
                vec!["wait for the warm-up to end (BLOAT_PROBE_WARMUP): the trend then tells steady from growth"]
            }
            Verdict::Healthy => vec![],
        };
        list.extend(texts.into_iter().map(String::from));
        if verdict == Verdict::ArenaFragmentation {
            list.extend(trim);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A 25-thread pool after a load of varied strings under glibc's defaults, as
    /// docs/bench.md measured it: 900 MiB RSS, most of it free in 16 arenas.
    fn fragmented() -> Figures {
        Figures {
            allocator: Kind::Glibc,
            allocator_version: "2.36".into(),
            rss: 900 * MIB,
            pss: Some(880 * MIB),
            uss: Some(870 * MIB),
            malloc_in_use: Some(180 * MIB),
            free: Some(700 * MIB),
            trimmable: Some(650 * MIB),
            arena_count: Some(16),
            arenas_holding_free: Some(16),
            ruby_heap: Some(20 * MIB),
            ruby_gc_malloc_limit: None,
        }
    }

    fn judge(figures: &Figures, trend: Option<Trend>) -> Diagnosis {
        Diagnosis::judge(figures, &Thresholds::default(), trend, Phase::Snapshot, None, 0.0)
    }

    fn growing(per_hour: f64, seconds: f64) -> Trend {
        Trend {
            samples: 20,
            seconds,
            in_use_per_hour: Some(per_hour),
            ruby_heap_per_hour: Some(0.0),
            rss_per_hour: Some(per_hour),
            baseline_in_use: Some(100 * MIB),
            baseline_ruby_heap: Some(20 * MIB),
            baseline_rss: 300 * MIB,
        }
    }

    #[test]
    fn free_memory_spread_over_arenas_is_fragmentation_and_in_one_or_two_retention() {
        let diagnosis = judge(&fragmented(), None);
        assert_eq!(diagnosis.verdict, Verdict::ArenaFragmentation);
        assert_eq!(diagnosis.allocator, "glibc 2.36");
        assert!(
            diagnosis.explanation.starts_with("glibc holds 700 MiB (78% of RSS 900 MiB) free"),
            "{}",
            diagnosis.explanation
        );
        assert!(diagnosis.remedies[0].starts_with("MALLOC_ARENA_MAX=2"), "{:?}", diagnosis.remedies);
        assert!(diagnosis.remedies[2].contains("about 650 MiB"), "{:?}", diagnosis.remedies);
        let two = Figures { arena_count: Some(2), arenas_holding_free: Some(2), ..fragmented() };
        let retained = judge(&two, None);
        assert_eq!(retained.verdict, Verdict::AllocatorRetained);
        assert!(retained.remedies[0].starts_with("malloc_trim(0) would hand back about 650 MiB"));
        assert!(Verdict::ArenaFragmentation.freeable() && Verdict::AllocatorRetained.freeable());
    }

    #[test]
    fn jemalloc_s_retained_pages_get_its_own_remedies_and_no_glibc_figures() {
        let jemalloc = Figures {
            allocator: Kind::Jemalloc,
            allocator_version: "5.3.0".into(),
            trimmable: None,
            arena_count: None,
            arenas_holding_free: None,
            ..fragmented()
        };
        let diagnosis = judge(&jemalloc, None);
        assert_eq!(diagnosis.verdict, Verdict::AllocatorRetained);
        assert!(diagnosis.remedies[0].contains("background_thread:true"), "{:?}", diagnosis.remedies);
        assert!(!diagnosis.remedies.iter().any(|remedy| remedy.contains("malloc_trim")));
    }

    #[test]
    fn memory_in_use_is_live_native_before_a_trend_a_working_set_after_and_growth_when_it_rises() {
        let busy =
            Figures { free: Some(10 * MIB), trimmable: Some(5 * MIB), malloc_in_use: Some(700 * MIB), ..fragmented() };
        assert_eq!(judge(&busy, None).verdict, Verdict::LiveNative);
        let steady = judge(&busy, Some(growing(MIB as f64, 600.0)));
        assert_eq!(steady.verdict, Verdict::Healthy);
        assert!(steady.explanation.starts_with("A steady working set of 700 MiB in use"), "{}", steady.explanation);
        let leak = judge(&busy, Some(growing(3600.0 * MIB as f64, 60.0)));
        assert_eq!(leak.verdict, Verdict::NativeGrowth);
        assert!(
            leak.explanation.starts_with("Memory in use has grown by 60 MiB in the last 60 s"),
            "{}",
            leak.explanation
        );
        // As fast, but not yet min_growth in all: not a finding yet.
        assert_eq!(judge(&busy, Some(growing(3600.0 * MIB as f64, 5.0))).verdict, Verdict::Healthy);
    }

    /// Ruby's garbage lifts memory in use until a collection, by up to its GC's malloc
    /// limit: a rise of min_growth and less than that limit more is not growth in a Ruby
    /// process, one past both is; Ruby's object heap is not weighed against the limit.
    #[test]
    fn a_rise_that_ruby_s_gc_would_collect_is_not_growth() {
        let busy =
            Figures { free: Some(10 * MIB), trimmable: Some(5 * MIB), malloc_in_use: Some(700 * MIB), ..fragmented() };
        let ruby = Figures { ruby_gc_malloc_limit: Some(32 * MIB), ..busy.clone() };
        let rise = |mib: f64| Some(growing(3600.0 * mib * MIB as f64 / 60.0, 60.0));
        assert_eq!(judge(&busy, rise(40.0)).verdict, Verdict::NativeGrowth);
        assert_eq!(judge(&ruby, rise(40.0)).verdict, Verdict::Healthy);
        assert_eq!(judge(&ruby, rise(49.0)).verdict, Verdict::NativeGrowth);
        let heap = Trend {
            in_use_per_hour: Some(0.0),
            ruby_heap_per_hour: Some(20.0 * 60.0 * MIB as f64),
            ..growing(0.0, 60.0)
        };
        assert_eq!(judge(&ruby, Some(heap)).verdict, Verdict::RubyHeapGrowth);
    }

    /// #25: a process that just booted is warming up, however much it holds in use; live
    /// memory is what it has grown by since its first moment; what the allocator holds free
    /// is found during the warm-up too.
    #[test]
    fn during_the_warm_up_the_verdict_weighs_memory_against_the_first_moment() {
        let busy =
            Figures { free: Some(10 * MIB), trimmable: Some(5 * MIB), malloc_in_use: Some(700 * MIB), ..fragmented() };
        let during = |boot_in_use| {
            Diagnosis::judge(&busy, &Thresholds::default(), None, Phase::WarmingUp { boot_in_use }, None, 0.0)
        };
        let booted = during(None);
        assert_eq!(booted.verdict, Verdict::WarmingUp, "{}", booted.explanation);
        assert_eq!(during(Some(690 * MIB)).verdict, Verdict::WarmingUp);
        assert!(during(Some(690 * MIB)).explanation.contains("700 MiB in use (690 MiB at its first moment)"));
        let grown = during(Some(100 * MIB));
        assert_eq!(grown.verdict, Verdict::LiveNative);
        assert!(grown.explanation.contains("600 MiB more than the 100 MiB in use at the process's first moment"));
        let after = Diagnosis::judge(
            &busy,
            &Thresholds::default(),
            None,
            Phase::Warm { boot_in_use: Some(690 * MIB) },
            None,
            0.0,
        );
        assert_eq!(after.verdict, Verdict::Healthy);
        let free = Diagnosis::judge(
            &fragmented(),
            &Thresholds::default(),
            None,
            Phase::WarmingUp { boot_in_use: None },
            None,
            0.0,
        );
        assert_eq!(free.verdict, Verdict::ArenaFragmentation);
    }

    #[test]
    fn small_processes_are_healthy_and_unknown_allocators_unmeasured() {
        let small = Figures { rss: 40 * MIB, free: Some(30 * MIB), malloc_in_use: Some(5 * MIB), ..fragmented() };
        assert_eq!(judge(&small, None).verdict, Verdict::Healthy);
        let tcmalloc = Figures { allocator: Kind::Tcmalloc, free: None, malloc_in_use: None, trimmable: None, ..small };
        let diagnosis = judge(&tcmalloc, None);
        assert_eq!(diagnosis.verdict, Verdict::Unmeasured);
        assert!(diagnosis.explanation.contains("only the Ruby heap (20 MiB)"), "{}", diagnosis.explanation);
        let outside = Figures { ruby_heap: None, ..tcmalloc };
        assert!(!judge(&outside, None).explanation.contains("Ruby heap"));
    }

    #[test]
    fn a_container_smaller_than_the_host_is_told_to_size_the_arena_cap() {
        let cgroup = Cgroup {
            version: Some(1),
            memory_limit: Some(512 * MIB),
            memory_usage: None,
            anon: None,
            file: None,
            cpu_quota: Some(1.0),
            cpuset_cpus: None,
            online_cpus: 64,
            arena_cap: Some(512),
        };
        let cap = ArenaCap::of(&cgroup);
        assert_eq!(cap, Some(ArenaCap { cap: 512, container_cpus: 1, online_cpus: 64 }));
        let diagnosis = Diagnosis::judge(&fragmented(), &Thresholds::default(), None, Phase::Snapshot, cap, 0.0);
        assert!(diagnosis.remedies[0].contains("MALLOC_ARENA_MAX=8 sizes the cap"), "{:?}", diagnosis.remedies);
        assert_eq!(ArenaCap::of(&Cgroup { arena_cap: Some(8), ..cgroup }), None);
    }
}
