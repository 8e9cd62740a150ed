//! BloatProbe.allocator, .jemalloc_stats and .bundled_jemalloc_stats.

use super::errors::{probe_error, ProbeClass};
use super::fields::to_hash;
use bloat_probe_core::allocator::{self, Allocator, Kind};
use bloat_probe_core::bundled_jemalloc;
use magnus::{Error, RHash, Ruby};
use std::sync::OnceLock;

/// The allocator cannot change once the process runs (LD_PRELOAD acts at exec).
pub fn live() -> &'static Allocator {
    static LIVE: OnceLock<Allocator> = OnceLock::new();
    LIVE.get_or_init(allocator::detect)
}

pub fn allocator(ruby: &Ruby) -> Result<RHash, Error> {
    to_hash(ruby, live())
}

pub fn jemalloc_stats(ruby: &Ruby) -> Result<RHash, Error> {
    match allocator::preloaded_jemalloc_stats() {
        Some(Ok(stats)) => to_hash(ruby, &stats),
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
    to_hash(ruby, &stats)
}

/// BloatProbe.jemalloc_purge: NotJemallocError unless jemalloc is preloaded.
pub fn jemalloc_purge(ruby: &Ruby) -> Result<bool, Error> {
    match allocator::purge_preloaded_jemalloc() {
        Some(Ok(())) => Ok(true),
        Some(Err(message)) => Err(probe_error(ruby, ProbeClass::Error, message)),
        None => Err(probe_error(
            ruby,
            ProbeClass::NotJemallocError,
            format!("jemalloc is not this process's allocator ({} is)", live()),
        )),
    }
}

/// Raises NotGlibcError for readings that only glibc's malloc can give.
pub fn require_glibc(ruby: &Ruby, reading: &str) -> Result<(), Error> {
    let live = live();
    if live.name == Kind::Glibc {
        return Ok(());
    }
    Err(probe_error(
        ruby,
        ProbeClass::NotGlibcError,
        format!("{reading} describes glibc's malloc, but this process allocates with {live}; glibc's figures would be empty, not real"),
    ))
}
