//! Native.own_faults and Native.faults_of: a thread's minor page faults, which the
//! attribution uses to share an arena's rise among the calls that overlapped on it.

use super::errors::io_error;
use bloat_probe_core::thread_faults;
use magnus::{Error, Ruby};

pub fn own_faults(ruby: &Ruby) -> Result<u64, Error> {
    thread_faults::own().map_err(|e| io_error(ruby, "getrusage(RUSAGE_THREAD)", e))
}

/// nil once the thread has ended.
pub fn faults_of(ruby: &Ruby, tid: u32) -> Result<Option<u64>, Error> {
    thread_faults::of(tid).map_err(|e| io_error(ruby, &format!("reading /proc/self/task/{tid}/stat"), e))
}
