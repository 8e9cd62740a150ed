//! The malloc workload: allocate blocks of varied sizes, write them, keep a fraction and
//! free the rest out of order. Freed chunks between kept ones fragment an arena, which is
//! what makes glibc's arenas hold memory that nothing uses.
//!
//! `spec` says what a call does and checks it, `sizes` draws the block sizes, `allocator`
//! allocates them, `retain_limit` counts them against the process-wide limit, `worker` is
//! one thread's share, and `call` runs a call in slices.

mod allocator;
mod call;
mod retain_limit;
mod sizes;
mod spec;
mod worker;

use std::fmt;
use std::time::Duration;

pub use allocator::ChurnAllocator;
pub use call::{Churn, Step};
pub use retain_limit::{retain_limit, retained_bytes, set_retain_limit, RetainedBlocks};
pub use sizes::{Distribution, Rng, Sizes};
pub use spec::{Bounds, ChurnSpec, RangeError, BLOCK_SIZE, COUNT, RETAIN, THREADS, WINDOW};

use crate::reading;
use crate::schema::Unit::{Bytes, Count, Name, Object, Seconds};
use crate::schema::{FieldValue, Value};

/// What a call's threads did, added up.
#[derive(Debug)]
pub struct Outcome {
    pub allocations: u64,
    pub bytes: u64,
    pub retained: RetainedBlocks,
    pub elapsed: Duration,
    pub threads: u64,
}

impl FieldValue for ChurnAllocator {
    fn value(&self) -> Value<'_> {
        Value::Name(self.name())
    }
}

impl FieldValue for RetainedBlocks {
    fn value(&self) -> Value<'_> {
        Value::Object
    }
}

reading! {
    /// BloatProbe.churn's result. `retained` is the blocks kept, which the Ruby layer
    /// wraps in an object that frees them.
    #[derive(Debug)]
    pub struct ChurnResult as "ChurnResult" {
        allocations: u64 => Count,
        bytes: u64 => Bytes,
        retained_count: usize => Count,
        retained_bytes: usize => Bytes,
        elapsed: Duration => Seconds,
        threads: u64 => Count,
        allocator: ChurnAllocator => Name,
        retained: RetainedBlocks => Object,
    }
}

impl Outcome {
    pub fn into_result(self, allocator: ChurnAllocator) -> ChurnResult {
        ChurnResult {
            allocations: self.allocations,
            bytes: self.bytes,
            retained_count: self.retained.count(),
            retained_bytes: self.retained.bytes(),
            elapsed: self.elapsed,
            threads: self.threads,
            allocator,
            retained: self.retained,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChurnError {
    /// The unblocking function asked the work to stop (Thread#kill, Ctrl-C).
    Cancelled {
        allocations: u64,
    },
    LimitExceeded {
        limit: usize,
        held: usize,
        size: usize,
    },
    OutOfMemory {
        size: usize,
    },
    /// A thread could not be started, or ended without a result.
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
