//! BloatProbe.arena_stats: malloc_info parsed, one entry per arena, with process totals.

use super::allocator::live;
use super::errors::{probe_error, ProbeClass};
use super::fields::to_hash;
use bloat_probe_core::arena_stats;
use magnus::{Error, RHash, Ruby};

pub fn arena_stats(ruby: &Ruby) -> Result<RHash, Error> {
    let stats = arena_stats::read(live()).map_err(|message| probe_error(ruby, ProbeClass::Error, message))?;
    to_hash(ruby, &stats)
}
