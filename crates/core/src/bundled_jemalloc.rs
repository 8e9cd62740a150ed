//! The jemalloc compiled into this library by tikv-jemallocator. Its symbols are prefixed,
//! so it serves only what this library allocates from it on purpose (`churn` with
//! `allocator: :jemalloc`), side by side with the process's own malloc.

use crate::allocator::{JemallocSource, JemallocStats};
use tikv_jemalloc_ctl::{arenas, epoch, stats};

pub fn stats() -> Result<JemallocStats, String> {
    let failed = |what: &str, e: tikv_jemalloc_ctl::Error| format!("bundled jemalloc {what}: {e}");
    epoch::advance().map_err(|e| failed("epoch", e))?;
    Ok(JemallocStats {
        source: JemallocSource::Bundled,
        version: version(),
        allocated: stats::allocated::read().map_err(|e| failed("stats.allocated", e))? as u64,
        active: stats::active::read().map_err(|e| failed("stats.active", e))? as u64,
        resident: stats::resident::read().map_err(|e| failed("stats.resident", e))? as u64,
        mapped: stats::mapped::read().map_err(|e| failed("stats.mapped", e))? as u64,
        retained: stats::retained::read().map_err(|e| failed("stats.retained", e))? as u64,
        narenas: u64::from(arenas::narenas::read().map_err(|e| failed("arenas.narenas", e))?),
    })
}

pub fn version() -> String {
    tikv_jemalloc_ctl::version::read().map(|v| v.trim_end_matches('\0').to_owned()).unwrap_or_else(|_| "unknown".into())
}
