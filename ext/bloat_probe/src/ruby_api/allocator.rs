//! BloatProbe.allocator, .jemalloc_stats and .bundled_jemalloc_stats.

use super::errors::{probe_error, ProbeClass};
use super::Fields;
use crate::allocator::{self, Allocator, JemallocStats, Kind};
use crate::bundled_jemalloc;
use magnus::{Error, RHash, Ruby};
use std::sync::OnceLock;

/// The allocator cannot change once the process runs (LD_PRELOAD acts at exec).
pub fn live() -> &'static Allocator {
    static LIVE: OnceLock<Allocator> = OnceLock::new();
    LIVE.get_or_init(allocator::detect)
}

pub fn allocator(ruby: &Ruby) -> Result<RHash, Error> {
    let live = live();
    let fields = Fields::new(ruby);
    fields.set("name", ruby.to_symbol(live.kind.name()))?;
    fields.set("version", live.version.as_str())?;
    Ok(fields.into_hash())
}

pub fn jemalloc_stats(ruby: &Ruby) -> Result<RHash, Error> {
    match allocator::preloaded_jemalloc_stats() {
        Some(Ok(stats)) => stats_hash(ruby, &stats, "preloaded", &live().version),
        Some(Err(message)) => Err(probe_error(ruby, ProbeClass::Error, message)),
        None => Err(probe_error(
            ruby,
            ProbeClass::NotJemallocError,
            format!(
                "jemalloc is not this process's allocator ({} is); start Ruby with \
                 LD_PRELOAD=libjemalloc.so.2, or use BloatProbe.bundled_jemalloc_stats",
                live()
            ),
        )),
    }
}

pub fn bundled_jemalloc_stats(ruby: &Ruby) -> Result<RHash, Error> {
    let stats = bundled_jemalloc::stats().map_err(|message| probe_error(ruby, ProbeClass::Error, message))?;
    stats_hash(ruby, &stats, "bundled", &bundled_jemalloc::version())
}

/// `source`: "preloaded" (the process's allocator) or "bundled" (the gem's own).
pub fn stats_hash(ruby: &Ruby, stats: &JemallocStats, source: &str, version: &str) -> Result<RHash, Error> {
    let fields = Fields::new(ruby);
    fields.set("source", ruby.to_symbol(source))?;
    fields.set("version", version)?;
    fields.set("allocated", stats.allocated)?;
    fields.set("active", stats.active)?;
    fields.set("resident", stats.resident)?;
    fields.set("mapped", stats.mapped)?;
    fields.set("retained", stats.retained)?;
    fields.set("narenas", stats.narenas)?;
    Ok(fields.into_hash())
}

/// Raises NotGlibcError for readings that only glibc's malloc can give.
pub fn require_glibc(ruby: &Ruby, reading: &str) -> Result<(), Error> {
    let live = live();
    if live.kind == Kind::Glibc {
        return Ok(());
    }
    Err(probe_error(
        ruby,
        ProbeClass::NotGlibcError,
        format!("{reading} describes glibc's malloc, but this process allocates with {live}; glibc's figures would be empty, not real"),
    ))
}
