//! The malloc workload: allocate blocks of varied sizes, write them, keep a fraction and
//! free the rest out of order. Freed chunks between kept ones fragment an arena, which is
//! what makes glibc's arenas hold memory that nothing uses.

use std::alloc::{GlobalAlloc, Layout};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};
use tikv_jemallocator::Jemalloc;

pub const MAX_THREADS: u64 = 64;
pub const MAX_COUNT: u64 = 1_000_000_000;
pub const MAX_BLOCK_SIZE: u64 = 64 << 20;
pub const MAX_WINDOW: u64 = 1 << 20;
pub const DEFAULT_RETAIN_LIMIT: usize = 2 << 30;

static RETAINED_BYTES: AtomicUsize = AtomicUsize::new(0);
static RETAIN_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_RETAIN_LIMIT);

/// Bytes that churn may hold at once across the process, so that a typo in a size does
/// not get the process killed by the OOM killer.
pub fn retain_limit() -> usize {
    RETAIN_LIMIT.load(Ordering::Relaxed)
}

pub fn set_retain_limit(bytes: usize) {
    RETAIN_LIMIT.store(bytes, Ordering::Relaxed);
}

/// Bytes held right now by every live `RetainedBlocks`.
pub fn retained_bytes() -> usize {
    RETAINED_BYTES.load(Ordering::Relaxed)
}

/// The part of RETAINED_BYTES that completed calls handed to their callers. A forked child
/// has its copies of those, but none of the threads that were churning at the fork: what
/// they had reserved would stay counted in the child for good.
static RESULT_BYTES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn forget_running_churns() {
    RETAINED_BYTES.store(RESULT_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn watch_forks() {
    static WATCHED: OnceLock<()> = OnceLock::new();
    WATCHED.get_or_init(|| {
        // SAFETY: the child handler only stores to atomics, which is safe in a forked
        // child. Should registration fail, a child keeps the parent's count, as before.
        unsafe { libc::pthread_atfork(None, None, Some(forget_running_churns)) };
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    /// As many blocks between 32 and 64 bytes as between 16 and 32 KiB: many small
    /// strings and a few large buffers, as in a web request.
    LogUniform,
}

/// Where the blocks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The process's malloc (glibc, or whatever LD_PRELOAD put in its place).
    System,
    /// The jemalloc bundled in this library.
    BundledJemalloc,
}

impl Source {
    fn alloc(self, size: usize) -> Option<NonNull<u8>> {
        let ptr = match self {
            // SAFETY: malloc accepts any size and returns null on failure.
            Source::System => unsafe { libc::malloc(size) }.cast::<u8>(),
            // SAFETY: the layout has a non-zero size (validated: min_size >= 1).
            Source::BundledJemalloc => unsafe { Jemalloc.alloc(block_layout(size)?) },
        };
        NonNull::new(ptr)
    }

    /// # Safety
    /// `ptr` must come from `self.alloc(size)` and not have been freed.
    unsafe fn free(self, ptr: NonNull<u8>, size: usize) {
        match self {
            Source::System => libc::free(ptr.as_ptr().cast()),
            Source::BundledJemalloc => {
                if let Some(layout) = block_layout(size) {
                    Jemalloc.dealloc(ptr.as_ptr(), layout)
                }
            }
        }
    }
}

fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, 16).ok()
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChurnSpec {
    /// Allocations per thread.
    pub count: u64,
    pub min_size: u64,
    pub max_size: u64,
    pub distribution: Distribution,
    /// Fraction of blocks kept after the call returns, 0.0..=1.0.
    pub retain: f64,
    /// Transient blocks alive at once per thread; each new one frees a random older one.
    pub window: u64,
    pub seed: u64,
    /// None: run on the calling thread. Some(n): n native threads at once.
    pub threads: Option<u64>,
    pub source: Source,
}

impl Default for ChurnSpec {
    fn default() -> Self {
        ChurnSpec {
            count: 10_000,
            min_size: 24,
            max_size: 32 << 10,
            distribution: Distribution::LogUniform,
            retain: 0.0,
            window: 256,
            seed: 1,
            threads: None,
            source: Source::System,
        }
    }
}

/// A value out of its allowed range; the message names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<(), RangeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RangeError(format!("{name} must be in {min}..{max}, got {value}")))
    }
}

impl ChurnSpec {
    pub fn validate(&self) -> Result<(), RangeError> {
        check_range("count", self.count, 1, MAX_COUNT)?;
        check_range("min_size", self.min_size, 1, MAX_BLOCK_SIZE)?;
        check_range("max_size", self.max_size, self.min_size, MAX_BLOCK_SIZE)?;
        check_range("window", self.window, 0, MAX_WINDOW)?;
        if let Some(threads) = self.threads {
            check_range("threads", threads, 1, MAX_THREADS)?;
        }
        if !(0.0..=1.0).contains(&self.retain) {
            return Err(RangeError(format!("retain must be in 0.0..1.0, got {}", self.retain)));
        }
        // A window wider than count never fills: count blocks are all there are.
        let transient = self.threads.unwrap_or(1) * self.window.min(self.count) * self.max_size;
        let limit = retain_limit() as u64;
        if transient > limit {
            return Err(RangeError(format!(
                "threads × min(window, count) × max_size = {transient} bytes could be held at once, over the retain limit of {limit} bytes"
            )));
        }
        Ok(())
    }
}

/// SplitMix64: tiny, fast and deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The sizes one thread allocates, in order.
#[derive(Debug, Clone)]
pub struct Sizes {
    rng: Rng,
    min: u64,
    max: u64,
    distribution: Distribution,
}

impl Sizes {
    pub fn new(spec: &ChurnSpec, seed: u64) -> Self {
        Sizes { rng: Rng::new(seed), min: spec.min_size, max: spec.max_size, distribution: spec.distribution }
    }
}

impl Iterator for Sizes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let size = match self.distribution {
            Distribution::Uniform => self.min + self.rng.below(self.max - self.min + 1),
            Distribution::LogUniform => {
                let (low, high) = ((self.min as f64).ln(), ((self.max + 1) as f64).ln());
                ((low + self.rng.next_f64() * (high - low)).exp() as u64).clamp(self.min, self.max)
            }
        };
        Some(size)
    }
}

/// Reserves `size` bytes against the process-wide limit; false when over it.
fn reserve(size: usize) -> bool {
    let limit = retain_limit();
    RETAINED_BYTES
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| held.checked_add(size).filter(|total| *total <= limit))
        .is_ok()
}

/// One thread's share of the limit, reserved from the global count a slice at a time:
/// an atomic update per allocation would make two threads fight over one cache line.
struct Budget {
    credit: usize,
}

impl Budget {
    const SLICE: usize = 4 << 20;

    fn take(&mut self, size: usize) -> bool {
        if self.credit < size {
            let want = size.max(Self::SLICE);
            // Near the limit a whole slice may not fit where this one block still does.
            let granted = if reserve(want) {
                want
            } else if reserve(size) {
                size
            } else {
                return false;
            };
            self.credit += granted;
        }
        self.credit -= size;
        true
    }

    /// Freed bytes stay reserved, as credit for the next blocks.
    fn give_back(&mut self, size: usize) {
        self.credit += size;
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        RETAINED_BYTES.fetch_sub(self.credit, Ordering::Relaxed);
    }
}

/// Blocks kept by a churn call, freed on drop.
#[derive(Debug)]
pub struct RetainedBlocks {
    source: Source,
    blocks: Vec<(NonNull<u8>, usize)>,
    bytes: usize,
    /// Handed to a caller as a call's result (counted in RESULT_BYTES too).
    is_result: bool,
}

// SAFETY: the blocks are heap allocations owned only by this value; malloc's free and
// jemalloc's dealloc may be called from any thread.
unsafe impl Send for RetainedBlocks {}

impl RetainedBlocks {
    pub fn empty(source: Source) -> Self {
        RetainedBlocks { source, blocks: Vec::new(), bytes: 0, is_result: false }
    }

    pub fn count(&self) -> usize {
        self.blocks.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn push(&mut self, ptr: NonNull<u8>, size: usize) {
        self.blocks.push((ptr, size));
        self.bytes += size;
    }

    fn mark_result(&mut self) {
        RESULT_BYTES.fetch_add(self.bytes, Ordering::Relaxed);
        self.is_result = true;
    }

    fn absorb(&mut self, mut other: RetainedBlocks) {
        self.bytes += other.bytes;
        self.blocks.append(&mut other.blocks);
        other.bytes = 0;
    }
}

impl Drop for RetainedBlocks {
    fn drop(&mut self) {
        for &(ptr, size) in &self.blocks {
            // SAFETY: every block came from self.source.alloc(size) and is freed once here.
            unsafe { self.source.free(ptr, size) };
        }
        RETAINED_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        if self.is_result {
            RESULT_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub allocations: u64,
    pub bytes: u64,
    pub retained: RetainedBlocks,
    pub elapsed: Duration,
    pub threads: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChurnError {
    /// The unblocking function asked the work to stop (Thread#kill, Ctrl-C).
    Cancelled { allocations: u64 },
    LimitExceeded { limit: usize, held: usize, size: usize },
    OutOfMemory { size: usize },
    Spawn(String),
    Invalid(RangeError),
}

impl fmt::Display for ChurnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChurnError::Cancelled { allocations } => write!(f, "churn interrupted after {allocations} allocations"),
            ChurnError::LimitExceeded { limit, held, size } => write!(
                f,
                "retaining {size} more bytes would pass the retain limit of {limit} bytes ({held} held); \
                 release earlier results or raise BloatProbe.retain_limit"
            ),
            ChurnError::OutOfMemory { size } => write!(f, "malloc returned NULL for {size} bytes"),
            ChurnError::Spawn(reason) => write!(f, "could not start a churn thread: {reason}"),
            ChurnError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// Runs the workload; `cancel` may be set from another thread to stop it early, in which
/// case every block it allocated is freed before returning.
pub fn run(spec: &ChurnSpec, cancel: &AtomicBool) -> Result<Outcome, ChurnError> {
    // Zero-sized blocks would be undefined behaviour for jemalloc: never run unchecked.
    spec.validate().map_err(ChurnError::Invalid)?;
    watch_forks();
    let started = Instant::now();
    let per_thread = match spec.threads {
        None => vec![run_thread(spec, 0, cancel)],
        Some(n) => thread::scope(|scope| {
            let mut handles = Vec::new();
            for index in 0..n {
                let spawned = thread::Builder::new()
                    .name(format!("bloat_probe-churn-{index}"))
                    .spawn_scoped(scope, move || run_thread(spec, index, cancel));
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(e) => {
                        cancel.store(true, Ordering::Relaxed);
                        return vec![Err(ChurnError::Spawn(e.to_string()))];
                    }
                }
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(ChurnError::Spawn("a churn thread panicked".into()))))
                .collect()
        }),
    };
    let mut outcome = Outcome {
        allocations: 0,
        bytes: 0,
        retained: RetainedBlocks::empty(spec.source),
        elapsed: Duration::ZERO,
        threads: spec.threads.unwrap_or(1),
    };
    // A thread that fails (the retain limit, malloc) cancels the others: its error is the
    // cause, whichever thread reported first. A cancellation from outside counts every
    // allocation made, by the threads that finished and by those it stopped.
    let mut cause = None;
    let mut cancelled = false;
    let mut allocations = 0;
    for result in per_thread {
        match result {
            Ok(part) => {
                allocations += part.allocations;
                outcome.allocations += part.allocations;
                outcome.bytes += part.bytes;
                outcome.retained.absorb(part.retained);
            }
            Err(ChurnError::Cancelled { allocations: done }) => {
                allocations += done;
                cancelled = true;
            }
            Err(e) => {
                cause.get_or_insert(e);
            }
        }
    }
    outcome.elapsed = started.elapsed();
    match (cause, cancelled) {
        (Some(e), _) => Err(e),
        (None, true) => Err(ChurnError::Cancelled { allocations }),
        (None, false) => {
            outcome.retained.mark_result();
            Ok(outcome)
        }
    }
}

/// Writes one byte in every page of the block and its last byte: that makes the block
/// resident as a filled buffer would be, without spending the time of filling it, so the
/// workload measures the allocator rather than memory bandwidth.
fn touch(ptr: NonNull<u8>, size: usize, value: u8) {
    const PAGE: usize = 4096;
    for offset in (0..size).step_by(PAGE).chain(std::iter::once(size - 1)) {
        // SAFETY: offset < size, and ptr points to a block of `size` writable bytes.
        unsafe { ptr.as_ptr().add(offset).write_volatile(value) };
    }
}

fn thread_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

fn run_thread(spec: &ChurnSpec, index: u64, cancel: &AtomicBool) -> Result<Outcome, ChurnError> {
    let seed = thread_seed(spec.seed, index);
    let mut sizes = Sizes::new(spec, seed);
    let mut choices = Rng::new(seed.rotate_left(17));
    let mut budget = Budget { credit: 0 };
    let mut transient = RetainedBlocks::empty(spec.source);
    let mut retained = RetainedBlocks::empty(spec.source);
    let mut allocated_bytes = 0u64;
    let window = spec.window as usize;
    for done in 0..spec.count {
        if cancel.load(Ordering::Relaxed) {
            return Err(ChurnError::Cancelled { allocations: done });
        }
        let size = sizes.next().unwrap_or(spec.min_size) as usize;
        let keep = choices.next_f64() < spec.retain;
        // Transient blocks are counted against the limit too, so the total is honest.
        if !budget.take(size) {
            cancel.store(true, Ordering::Relaxed);
            return Err(ChurnError::LimitExceeded { limit: retain_limit(), held: retained_bytes(), size });
        }
        let Some(ptr) = spec.source.alloc(size) else {
            budget.give_back(size);
            cancel.store(true, Ordering::Relaxed);
            return Err(ChurnError::OutOfMemory { size });
        };
        touch(ptr, size, done as u8);
        allocated_bytes += size as u64;
        if keep {
            retained.push(ptr, size);
        } else if window == 0 {
            // SAFETY: just allocated from this source with this size.
            unsafe { spec.source.free(ptr, size) };
            budget.give_back(size);
        } else if transient.blocks.len() < window {
            transient.push(ptr, size);
        } else {
            let slot = choices.below(window as u64) as usize;
            let (old, old_size) = std::mem::replace(&mut transient.blocks[slot], (ptr, size));
            transient.bytes = transient.bytes + size - old_size;
            // SAFETY: the evicted block came from this source with old_size and leaves the set.
            unsafe { spec.source.free(old, old_size) };
            budget.give_back(old_size);
        }
    }
    Ok(Outcome {
        allocations: spec.count,
        bytes: allocated_bytes,
        retained,
        elapsed: Duration::ZERO,
        threads: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChurnSpec {
        ChurnSpec { count: 2_000, ..ChurnSpec::default() }
    }

    #[test]
    fn sizes_are_deterministic_for_a_seed_and_stay_in_range() {
        let s = spec();
        let a: Vec<u64> = Sizes::new(&s, 42).take(1000).collect();
        let b: Vec<u64> = Sizes::new(&s, 42).take(1000).collect();
        let c: Vec<u64> = Sizes::new(&s, 43).take(1000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|size| (s.min_size..=s.max_size).contains(size)));
    }

    #[test]
    fn log_uniform_favours_small_blocks() {
        let s = spec();
        let sizes: Vec<u64> = Sizes::new(&s, 7).take(10_000).collect();
        let small = sizes.iter().filter(|&&size| size < 1024).count();
        // ln(1024/24) / ln(32768/24) ≈ 0.52 of the blocks are under 1 KiB.
        assert!((4_700..5_700).contains(&small), "{small}");
        let uniform = ChurnSpec { distribution: Distribution::Uniform, ..s };
        let small_uniform = Sizes::new(&uniform, 7).take(10_000).filter(|&size| size < 1024).count();
        assert!(small_uniform < 500, "{small_uniform}");
    }

    #[test]
    fn validation_names_the_value_and_the_range() {
        let bad = ChurnSpec { min_size: 100, max_size: 10, ..spec() };
        assert_eq!(bad.validate().unwrap_err().0, "max_size must be in 100..67108864, got 10");
        let bad = ChurnSpec { retain: 1.5, ..spec() };
        assert_eq!(bad.validate().unwrap_err().0, "retain must be in 0.0..1.0, got 1.5");
        let bad = ChurnSpec { threads: Some(65), ..spec() };
        assert!(bad.validate().unwrap_err().0.starts_with("threads must be in 1..64"));
        assert!(ChurnSpec { count: 0, ..spec() }.validate().is_err());
    }

    #[test]
    fn a_window_wider_than_count_holds_only_count_blocks() {
        // 10 blocks of 64 MiB at most, whatever the window: under the 2 GiB limit.
        let few = ChurnSpec { count: 10, window: MAX_WINDOW, min_size: 1, max_size: MAX_BLOCK_SIZE, ..spec() };
        assert_eq!(few.validate(), Ok(()));
        let many = ChurnSpec { count: 40, ..few };
        assert!(many.validate().unwrap_err().0.starts_with("threads × min(window, count) × max_size = 2684354560 bytes"));
        assert!(ChurnSpec { retain: f64::NAN, ..spec() }.validate().is_err());
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn keeps_the_retained_fraction_and_frees_it_on_drop() {
        let s = ChurnSpec { retain: 0.25, threads: Some(2), ..spec() };
        let cancel = AtomicBool::new(false);
        let outcome = run(&s, &cancel).expect("run");
        assert_eq!(outcome.allocations, 4_000);
        let kept = outcome.retained.count();
        assert!((800..1_200).contains(&kept), "{kept}");
        assert!(retained_bytes() >= outcome.retained.bytes());
        assert!(outcome.bytes > outcome.retained.bytes() as u64);
    }

    #[test]
    fn the_same_seed_keeps_the_same_bytes() {
        let s = ChurnSpec { retain: 0.5, ..spec() };
        let cancel = AtomicBool::new(false);
        let a = run(&s, &cancel).expect("run");
        let b = run(&s, &cancel).expect("run");
        assert_eq!((a.bytes, a.retained.bytes()), (b.bytes, b.retained.bytes()));
    }

    #[test]
    fn runs_on_the_bundled_jemalloc_too() {
        let s = ChurnSpec { retain: 0.5, source: Source::BundledJemalloc, ..spec() };
        let before = crate::bundled_jemalloc::stats().expect("stats").allocated;
        let outcome = run(&s, &AtomicBool::new(false)).expect("run");
        let during = crate::bundled_jemalloc::stats().expect("stats").allocated;
        assert!(during >= before + outcome.retained.bytes() as u64, "{before} -> {during}");
    }

    #[test]
    fn run_refuses_an_unvalidated_spec() {
        let s = ChurnSpec { min_size: 0, max_size: 0, ..spec() };
        assert!(matches!(run(&s, &AtomicBool::new(false)), Err(ChurnError::Invalid(_))));
    }

    #[test]
    fn a_set_cancel_flag_stops_the_work() {
        let s = ChurnSpec { count: MAX_COUNT, ..spec() };
        let outcome = run(&s, &AtomicBool::new(true));
        assert_eq!(outcome.unwrap_err(), ChurnError::Cancelled { allocations: 0 });
    }
}
