//! A churn call in progress: on the calling thread in slices, or on threads of its own
//! while the caller waits in slices.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::retain_limit::{self, RetainedBlocks};
use super::worker::{Progress, Worker};
use super::{ChurnAllocator, ChurnError, ChurnSpec, Outcome};
use crate::panic_boundary::catch_panic;

/// What a slice of work ended with.
pub enum Step {
    /// The slice is over and the work goes on: call `run_for` on it again, or drop it.
    Paused(Churn),
    Done(Result<Outcome, ChurnError>),
}

/// Between slices the caller may do what it must (Ruby: take the GVL and act on signals),
/// then go on, or drop the call: that stops its threads and frees every block it took.
pub struct Churn {
    work: Work,
    started: Instant,
    threads: u64,
    allocator: ChurnAllocator,
    /// Set by the calling thread's worker when it fails; never from outside.
    stop: AtomicBool,
}

enum Work {
    Calling(Worker),
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
        retain_limit::watch_forks();
        let work = match spec.threads {
            None => Work::Calling(Worker::new(spec, 0)),
            Some(n) => Work::Spawned(Spawned::start(spec, n)?),
        };
        let threads = spec.threads.unwrap_or(1);
        Ok(Churn { work, started: Instant::now(), threads, allocator: spec.allocator, stop: AtomicBool::new(false) })
    }

    /// Works until the call is done, about `slice` has passed, or `pause` is set (by
    /// whoever wants the calling thread back, at any time).
    pub fn run_for(mut self, slice: Duration, pause: &AtomicBool) -> Step {
        let deadline = Instant::now().checked_add(slice);
        let results = match &mut self.work {
            Work::Calling(worker) => match worker.step(deadline, pause, &self.stop) {
                Progress::Paused => return Step::Paused(self),
                Progress::Failed(e) => vec![Err(e)],
                Progress::Finished => vec![Ok(worker.take_outcome())],
            },
            Work::Spawned(spawned) => match spawned.wait(deadline, pause) {
                Some(results) => results,
                None => return Step::Paused(self),
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
            retained: RetainedBlocks::empty(self.allocator),
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
                    self.received
                        .extend((0..missing).map(|_| Err(ChurnError::Spawn("a churn thread vanished".into()))));
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
    use crate::workload::{retained_bytes, COUNT};

    /// A call to its end, in one slice.
    fn run(spec: &ChurnSpec, pause: &AtomicBool) -> Result<Outcome, ChurnError> {
        match Churn::start(spec)?.run_for(Duration::MAX, pause) {
            Step::Done(result) => result,
            Step::Paused(_) => panic!("paused with no deadline and no pause asked"),
        }
    }

    fn spec() -> ChurnSpec {
        ChurnSpec { count: 2_000, ..ChurnSpec::default() }
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
        let s = ChurnSpec { retain: 0.5, allocator: ChurnAllocator::Jemalloc, ..spec() };
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
                    Step::Paused(more) => {
                        pauses += 1;
                        churn = more;
                    }
                    Step::Done(result) => break result.expect("sliced run"),
                }
            };
            assert!(pauses > 0, "{threads:?}: no slice ended before the work did");
            assert_eq!((sliced.allocations, sliced.bytes), (whole.allocations, whole.bytes), "{threads:?}");
            assert_eq!(sliced.retained.bytes(), whole.retained.bytes(), "{threads:?}");
        }
    }

    /// Asked for the thread back, a call pauses at once and can go on; dropped, it stops
    /// its threads (the drop joins them) and frees what it took.
    #[test]
    fn a_paused_call_goes_on_or_is_dropped() {
        for threads in [None, Some(2)] {
            let s = ChurnSpec { count: COUNT.max, retain: 0.5, threads, ..spec() };
            let running = Churn::start(&s).expect("start");
            let Step::Paused(running) = running.run_for(Duration::from_millis(20), &AtomicBool::new(false)) else {
                panic!("{threads:?}: done before its slice ended");
            };
            let Step::Paused(running) = running.run_for(Duration::from_secs(5), &AtomicBool::new(true)) else {
                panic!("{threads:?}: did not pause when asked");
            };
            let Step::Paused(running) = running.run_for(Duration::from_millis(20), &AtomicBool::new(false)) else {
                panic!("{threads:?}: did not go on");
            };
            drop(running);
        }
    }
}
