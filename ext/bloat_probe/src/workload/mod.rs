//! The malloc workload: allocate blocks of varied sizes, write them, keep a fraction and
//! free the rest out of order. Freed chunks between kept ones fragment an arena, which is
//! what makes glibc's arenas hold memory that nothing uses.
//!
//! `sizes` draws the block sizes, `source` allocates them, `budget` counts them against
//! the retain limit, `worker` is one thread's share, and `Churn` here runs a call.

mod budget;
mod sizes;
mod source;
mod worker;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use budget::{retain_limit, retained_bytes, set_retain_limit, RetainedBlocks, DEFAULT_RETAIN_LIMIT};
pub use sizes::{Distribution, Rng, Sizes};
pub use source::Source;
use worker::{Progress, Worker};

use crate::panic_boundary::catch_panic;

pub const MAX_THREADS: u64 = 64;
pub const MAX_COUNT: u64 = 1_000_000_000;
pub const MAX_BLOCK_SIZE: u64 = 64 << 20;
pub const MAX_WINDOW: u64 = 1 << 20;

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

/// What a slice of work ended with.
pub enum Step {
    /// The slice is over and the work goes on: call `run_for` again.
    Paused,
    Done(Result<Outcome, ChurnError>),
}

/// A churn call in progress. Run on the calling thread (`threads: None`), it works in
/// slices; with `threads: Some(n)`, n threads of its own work meanwhile and the caller
/// waits in slices. Between slices the caller may do what it must (Ruby: take the GVL and
/// act on signals), then go on, or drop the call: that stops its threads and frees every
/// block it took.
pub struct Churn {
    work: Work,
    started: Instant,
    threads: u64,
    source: Source,
    /// Set by the calling thread's worker when it fails; never from outside.
    stop: AtomicBool,
}

enum Work {
    Calling(Option<Worker>),
    Spawned(Spawned),
}

struct Spawned {
    stop: Arc<AtomicBool>,
    results: Receiver<Result<Outcome, ChurnError>>,
    received: Vec<Result<Outcome, ChurnError>>,
    handles: Vec<JoinHandle<()>>,
}

impl Churn {
    pub fn start(spec: &ChurnSpec) -> Result<Churn, ChurnError> {
        // Zero-sized blocks would be undefined behaviour for jemalloc: never run unchecked.
        spec.validate().map_err(ChurnError::Invalid)?;
        budget::watch_forks();
        let work = match spec.threads {
            None => Work::Calling(Some(Worker::new(spec, 0))),
            Some(n) => Work::Spawned(Spawned::start(spec, n)?),
        };
        let threads = spec.threads.unwrap_or(1);
        Ok(Churn { work, started: Instant::now(), threads, source: spec.source, stop: AtomicBool::new(false) })
    }

    /// Works until the call is done, about `slice` has passed, or `pause` is set (by
    /// whoever wants the calling thread back, at any time).
    pub fn run_for(&mut self, slice: Duration, pause: &AtomicBool) -> Step {
        let deadline = Instant::now().checked_add(slice);
        let results = match &mut self.work {
            Work::Calling(worker) => {
                let Some(running) = worker.as_mut() else {
                    return Step::Done(Err(ChurnError::Spawn("the call was already done".into())));
                };
                match running.step(deadline, pause, &self.stop) {
                    Progress::Paused => return Step::Paused,
                    Progress::Failed(e) => vec![Err(e)],
                    Progress::Finished => match worker.take() {
                        Some(finished) => vec![Ok(finished.into_outcome())],
                        None => return Step::Paused,
                    },
                }
            }
            Work::Spawned(spawned) => match spawned.wait(deadline, pause) {
                Some(results) => results,
                None => return Step::Paused,
            },
        };
        Step::Done(self.combine(results))
    }

    /// A thread that fails (the retain limit, malloc) stops the others: its error is the
    /// cause, whichever thread reported first. A cancellation from outside counts every
    /// allocation made, by the threads that finished and by those it stopped.
    fn combine(&self, results: Vec<Result<Outcome, ChurnError>>) -> Result<Outcome, ChurnError> {
        let mut outcome = Outcome {
            allocations: 0,
            bytes: 0,
            retained: RetainedBlocks::empty(self.source),
            elapsed: self.started.elapsed(),
            threads: self.threads,
        };
        let mut cause = None;
        let mut cancelled = None;
        for result in results {
            match result {
                Ok(part) => {
                    outcome.allocations += part.allocations;
                    outcome.bytes += part.bytes;
                    outcome.retained.absorb(part.retained);
                }
                Err(ChurnError::Cancelled { allocations }) => *cancelled.get_or_insert(0) += allocations,
                Err(e) => {
                    cause.get_or_insert(e);
                }
            }
        }
        match (cause, cancelled) {
            (Some(e), _) => Err(e),
            (None, Some(stopped)) => Err(ChurnError::Cancelled { allocations: outcome.allocations + stopped }),
            (None, None) => {
                outcome.retained.mark_result();
                Ok(outcome)
            }
        }
    }

    /// Gives up: stops the work, frees what it took, and says how far it got (threads of
    /// their own are stopped and asked). The Ruby side just drops the call.
    #[cfg(test)]
    fn cancel(self) -> ChurnError {
        match self.work {
            Work::Calling(worker) => ChurnError::Cancelled { allocations: worker.as_ref().map_or(0, Worker::allocations) },
            Work::Spawned(mut spawned) => {
                spawned.stop.store(true, Ordering::Relaxed);
                let never = AtomicBool::new(false);
                let results = spawned.wait(None, &never).unwrap_or_default();
                let allocations = results
                    .iter()
                    .map(|result| match result {
                        Ok(outcome) => outcome.allocations,
                        Err(ChurnError::Cancelled { allocations }) => *allocations,
                        Err(_) => 0,
                    })
                    .sum();
                ChurnError::Cancelled { allocations }
            }
        }
    }
}

impl Spawned {
    fn start(spec: &ChurnSpec, count: u64) -> Result<Spawned, ChurnError> {
        let (sender, results) = mpsc::channel();
        let mut spawned =
            Spawned { stop: Arc::new(AtomicBool::new(false)), results, received: Vec::new(), handles: Vec::new() };
        for index in 0..count {
            let worker = Worker::new(spec, index);
            let stop = Arc::clone(&spawned.stop);
            let sender = sender.clone();
            let started = thread::Builder::new().name(format!("bloat_probe-churn-{index}")).spawn(move || {
                let result = catch_panic(|| worker.run(&stop))
                    .unwrap_or_else(|message| Err(ChurnError::Spawn(format!("a churn thread panicked: {message}"))));
                // The receiver is gone only if the call was dropped: the blocks are freed here.
                let _ = sender.send(result);
            });
            match started {
                Ok(handle) => spawned.handles.push(handle),
                // Drop stops and joins the threads already started.
                Err(e) => return Err(ChurnError::Spawn(e.to_string())),
            }
        }
        Ok(spawned)
    }

    /// Every thread's result once all have reported; None at the deadline, or as soon as
    /// `pause` is set (polled: the threads go on meanwhile).
    fn wait(&mut self, deadline: Option<Instant>, pause: &AtomicBool) -> Option<Vec<Result<Outcome, ChurnError>>> {
        const POLL: Duration = Duration::from_millis(10);
        while self.received.len() < self.handles.len() {
            let now = Instant::now();
            if pause.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
                return None;
            }
            let wait = deadline.map_or(POLL, |d| (d - now).min(POLL));
            match self.results.recv_timeout(wait) {
                Ok(result) => self.received.push(result),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let missing = self.handles.len() - self.received.len();
                    self.received.extend((0..missing).map(|_| Err(ChurnError::Spawn("a churn thread vanished".into()))));
                }
            }
        }
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
        Some(std::mem::take(&mut self.received))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call to its end; `cancel` set from another thread stops it early, and every
    /// block it allocated is freed before it returns.
    fn run(spec: &ChurnSpec, cancel: &AtomicBool) -> Result<Outcome, ChurnError> {
        let mut churn = Churn::start(spec)?;
        // With no deadline, only `cancel` pauses it.
        match churn.run_for(Duration::MAX, cancel) {
            Step::Done(result) => result,
            Step::Paused => Err(churn.cancel()),
        }
    }

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

    /// Sliced or not, on the calling thread or on threads of its own, a call does the same.
    #[test]
    fn a_call_in_slices_ends_as_a_call_in_one_go() {
        for threads in [None, Some(3)] {
            let s = ChurnSpec { count: 200_000, retain: 0.01, threads, ..spec() };
            let whole = run(&s, &AtomicBool::new(false)).expect("run");
            let mut churn = Churn::start(&s).expect("start");
            let mut pauses = 0;
            let sliced = loop {
                match churn.run_for(Duration::from_micros(200), &AtomicBool::new(false)) {
                    Step::Paused => pauses += 1,
                    Step::Done(result) => break result.expect("sliced run"),
                }
            };
            assert!(pauses > 0, "{threads:?}: no slice ended before the work did");
            assert_eq!((sliced.allocations, sliced.bytes), (whole.allocations, whole.bytes), "{threads:?}");
            assert_eq!(sliced.retained.bytes(), whole.retained.bytes(), "{threads:?}");
        }
    }

    #[test]
    fn a_paused_call_goes_on_or_is_cancelled_and_freed() {
        for threads in [None, Some(2)] {
            let s = ChurnSpec { count: MAX_COUNT, retain: 0.5, threads, ..spec() };
            let mut churn = Churn::start(&s).expect("start");
            assert!(matches!(churn.run_for(Duration::from_millis(20), &AtomicBool::new(false)), Step::Paused));
            // Asked for the thread back, it pauses at once, and can go on.
            assert!(matches!(churn.run_for(Duration::from_secs(5), &AtomicBool::new(true)), Step::Paused));
            assert!(matches!(churn.run_for(Duration::from_millis(20), &AtomicBool::new(false)), Step::Paused));
            let ChurnError::Cancelled { allocations } = churn.cancel() else {
                panic!("{threads:?}: not cancelled");
            };
            assert!(allocations > 0, "{threads:?}");
        }
    }

    #[test]
    fn a_set_cancel_flag_stops_the_work() {
        let s = ChurnSpec { count: MAX_COUNT, ..spec() };
        let outcome = run(&s, &AtomicBool::new(true));
        assert_eq!(outcome.unwrap_err(), ChurnError::Cancelled { allocations: 0 });
    }
}
