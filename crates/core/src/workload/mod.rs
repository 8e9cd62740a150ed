//! The malloc workload: allocate blocks of varied sizes, write them, keep a fraction and
//! free the rest out of order. Freed chunks between kept ones fragment an arena, which is
//! what makes glibc's arenas hold memory that nothing uses.
//!
//! `spec` says what a call does and checks it, `sizes` draws the block sizes, `source`
//! allocates them, `budget` counts them against the retain limit, `worker` is one thread's
//! share, and `call` runs a call in slices.

mod budget;
mod call;
mod sizes;
mod source;
mod spec;
mod worker;

use std::fmt;
use std::time::Duration;

pub use budget::{retain_limit, retained_bytes, set_retain_limit, RetainedBlocks};
pub use call::{Churn, Step};
pub use sizes::{Distribution, Rng, Sizes};
pub use source::Source;
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

impl FieldValue for Source {
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
        allocator: Source => Name,
        retained: RetainedBlocks => Object,
    }
}

impl Outcome {
    pub fn into_result(self, allocator: Source) -> ChurnResult {
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
