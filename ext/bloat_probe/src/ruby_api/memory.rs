//! BloatProbe.memory: process memory from /proc/self; another process's USS for the guard;
//! a process's start time for the metrics.

use super::errors::io_error;
use super::fields::to_hash;
use bloat_probe_core::procfs;
use magnus::{Error, RHash, Ruby};

/// `detail` adds what smaps_rollup and smaps tell, which cost far more (see procfs).
pub fn memory(ruby: &Ruby, detail: bool) -> Result<RHash, Error> {
    let reading = procfs::reading(detail).map_err(|e| io_error(ruby, "reading /proc/self", e))?;
    to_hash(ruby, &reading)
}

/// USS of another process, by pid.
pub fn uss_of(ruby: &Ruby, pid: u32) -> Result<u64, Error> {
    procfs::uss_of(pid).map_err(|e| io_error(ruby, &format!("reading /proc/{pid}/smaps_rollup"), e))
}

/// When a process started, in seconds since the epoch.
pub fn start_time(ruby: &Ruby, pid: u32) -> Result<f64, Error> {
    procfs::start_time(pid).map_err(|e| io_error(ruby, &format!("reading /proc/{pid}/stat"), e))
}
