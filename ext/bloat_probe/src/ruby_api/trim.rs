//! BloatProbe.trim: malloc_trim, with RSS before and after.

use super::allocator::require_glibc;
use super::args::integer;
use super::errors::io_error;
use super::fields::to_hash;
use super::nogvl::without_gvl;
use bloat_probe_core::glibc::{self, TrimResult};
use bloat_probe_core::procfs;
use magnus::{Error, RHash, Ruby, Value};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub fn trim(ruby: &Ruby, pad: Value) -> Result<RHash, Error> {
    require_glibc(ruby, "trim")?;
    let pad = integer(ruby, "pad", pad, 0, isize::MAX as u64)? as usize;
    let rss = || procfs::memory().map(|m| m.rss).map_err(|e| io_error(ruby, "reading /proc/self/statm", e));
    let before = rss()?;
    let started = Instant::now();
    // Trimming gigabytes takes a while; other Ruby threads need not wait. It cannot be
    // cut short, so the cancel flag is not consulted.
    let released = without_gvl(ruby, &AtomicBool::new(false), || glibc::trim(pad))?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss()?;
    to_hash(ruby, &TrimResult { released, rss_before: before, rss_after: after, elapsed })
}
