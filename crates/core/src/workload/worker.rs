//! One thread's share of a churn call, as a state that can stop and go on: run on the
//! calling thread, it works in slices so that Ruby can act on signals between them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::allocator::touch;
use super::retain_limit::{retain_limit, retained_bytes, Reservation, RetainedBlocks};
use super::sizes::{thread_seed, Rng, Sizes};
use super::{ChurnError, ChurnSpec, Outcome};

/// Allocations between looks at the clock: a few microseconds of work.
const CLOCK_EVERY: u64 = 256;

pub(super) enum Progress {
    /// The slice is over, or the caller asked for the thread back; step again to go on.
    Paused,
    Finished,
    Failed(ChurnError),
}

pub(super) struct Worker {
    spec: ChurnSpec,
    sizes: Sizes,
    choices: Rng,
    reservation: Reservation,
    transient: RetainedBlocks,
    retained: RetainedBlocks,
    done: u64,
    allocated_bytes: u64,
}

impl Worker {
    pub(super) fn new(spec: &ChurnSpec, index: u64) -> Self {
        let seed = thread_seed(spec.seed, index);
        Worker {
            spec: spec.clone(),
            sizes: Sizes::new(spec, seed),
            choices: Rng::new(seed.rotate_left(17)),
            reservation: Reservation::new(),
            transient: RetainedBlocks::empty(spec.allocator),
            retained: RetainedBlocks::empty(spec.allocator),
            done: 0,
            allocated_bytes: 0,
        }
    }

    /// Allocates until the count is reached, `deadline` passes or `pause` is set (then it
    /// can go on), or `stop` is set (then it cannot). A failure sets `stop`, so that the
    /// other threads of the call stop too.
    pub(super) fn step(&mut self, deadline: Option<Instant>, pause: &AtomicBool, stop: &AtomicBool) -> Progress {
        let spec = &self.spec;
        let window = spec.window as usize;
        let mut since_clock = 0;
        while self.done < spec.count {
            if stop.load(Ordering::Relaxed) {
                return Progress::Failed(ChurnError::Cancelled { allocations: self.done });
            }
            if pause.load(Ordering::Relaxed) {
                return Progress::Paused;
            }
            since_clock += 1;
            if since_clock == CLOCK_EVERY {
                since_clock = 0;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Progress::Paused;
                }
            }
            let size = self.sizes.next().unwrap_or(spec.min_size) as usize;
            let keep = self.choices.next_f64() < spec.retain;
            // Transient blocks are counted against the limit too, so the total is honest.
            if !self.reservation.take(size) {
                stop.store(true, Ordering::Relaxed);
                return Progress::Failed(ChurnError::LimitExceeded {
                    limit: retain_limit(),
                    held: retained_bytes(),
                    size,
                });
            }
            let Some(ptr) = spec.allocator.alloc(size) else {
                self.reservation.give_back(size);
                stop.store(true, Ordering::Relaxed);
                return Progress::Failed(ChurnError::OutOfMemory { size });
            };
            // SAFETY: alloc returned a block of `size` writable bytes, and sizes are at least 1
            // (spec.rs bounds them).
            unsafe { touch(ptr, size, self.done as u8) };
            self.allocated_bytes += size as u64;
            self.done += 1;
            if keep {
                self.retained.push(ptr, size);
            } else if window == 0 {
                // SAFETY: just allocated from this allocator with this size.
                unsafe { spec.allocator.free(ptr, size) };
                self.reservation.give_back(size);
            } else if self.transient.count() < window {
                self.transient.push(ptr, size);
            } else {
                let slot = self.choices.below(window as u64) as usize;
                let (old, old_size) = self.transient.replace(slot, ptr, size);
                // SAFETY: the evicted block came from this allocator with old_size and leaves the set.
                unsafe { spec.allocator.free(old, old_size) };
                self.reservation.give_back(old_size);
            }
        }
        Progress::Finished
    }

    /// What a finished worker keeps; its transient blocks and unused reservation are freed when
    /// the worker is dropped.
    pub(super) fn take_outcome(&mut self) -> Outcome {
        Outcome {
            allocations: self.done,
            bytes: self.allocated_bytes,
            retained: std::mem::replace(&mut self.retained, RetainedBlocks::empty(self.spec.allocator)),
            elapsed: Duration::ZERO,
            threads: 1,
        }
    }

    /// Runs to the end on a thread of its own.
    pub(super) fn run(mut self, stop: &AtomicBool) -> Result<Outcome, ChurnError> {
        let never = AtomicBool::new(false);
        loop {
            match self.step(None, &never, stop) {
                Progress::Paused => continue,
                Progress::Finished => return Ok(self.take_outcome()),
                Progress::Failed(e) => return Err(e),
            }
        }
    }
}
