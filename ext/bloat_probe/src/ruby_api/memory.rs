//! BloatProbe.memory: process memory from /proc/self; BloatProbe.memory_of: another
//! process's (the guard's budget, a cluster's workers); a process's start time for the
//! metrics.

use super::errors::io_error;
use super::fields::to_array;
use bloat_probe_core::procfs;
use magnus::{Error, RArray, Ruby};

/// `detail` adds what smaps_rollup and the arena heaps tell, which cost far more (see
/// procfs). The values in the schema's order (see fields::to_array).
pub fn memory(ruby: &Ruby, detail: bool) -> Result<RArray, Error> {
    let reading = procfs::reading(detail).map_err(|e| io_error(ruby, "reading /proc/self", e))?;
    to_array(ruby, &reading)
}

/// Another process's memory, by pid, as a detailed reading gives one's own (without the
/// arena heaps).
pub fn memory_of(ruby: &Ruby, pid: u32) -> Result<RArray, Error> {
    let reading = procfs::reading_of(pid, false).map_err(|e| io_error(ruby, &format!("reading /proc/{pid}"), e))?;
    to_array(ruby, &reading)
}

/// When a process started, in seconds since the epoch.
pub fn start_time(ruby: &Ruby, pid: u32) -> Result<f64, Error> {
    procfs::start_time(pid).map_err(|e| io_error(ruby, &format!("reading /proc/{pid}/stat"), e))
}
