//! BloatProbe.malloc_stats: what glibc's malloc_stats() prints, as text and parsed.

use super::allocator::require_glibc;
use super::errors::{io_error, probe_error, ProbeClass};
use super::fields::to_hash;
use bloat_probe_core::{glibc, malloc_stats};
use magnus::{Error, RHash, Ruby};

pub fn malloc_stats(ruby: &Ruby) -> Result<RHash, Error> {
    require_glibc(ruby, "malloc_stats")?;
    let text = glibc::malloc_stats_text().map_err(|e| io_error(ruby, "malloc_stats", e))?;
    let stats = malloc_stats::parse(&text).map_err(|e| probe_error(ruby, ProbeClass::Error, e.to_string()))?;
    to_hash(ruby, &stats)
}
