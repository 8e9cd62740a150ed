//! The Ruby-facing layer: each file turns one reading or type of the core into Ruby
//! values and exceptions. The methods live on BloatProbe::Native and return Hashes built
//! from each reading's schema; lib/bloat_probe/readings.rb wraps them in value objects
//! made from the same schemas (Native::SCHEMAS).

mod allocator;
mod arena_stats;
mod args;
mod attribution_ledger;
mod cgroup;
mod churn;
mod diagnosis;
mod errors;
mod fields;
mod mallinfo;
mod malloc_stats;
mod mallopt;
mod memory;
mod metrics_listener;
mod nogvl;
mod outside_command;
mod retained;
mod thread_arena;
mod trim;

use magnus::{function, prelude::*, Error, Ruby};

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::init(ruby)?;
    let module = ruby.define_module("BloatProbe")?;
    let native = module.define_module("Native")?;
    native.const_set("SCHEMAS", fields::schemas(ruby)?)?;
    native.define_singleton_method("mallinfo", function!(mallinfo::mallinfo, 0))?;
    native.define_singleton_method("arena_stats", function!(arena_stats::arena_stats, 0))?;
    native.define_singleton_method("malloc_stats", function!(malloc_stats::malloc_stats, 0))?;
    native.define_singleton_method("memory", function!(memory::memory, 1))?;
    native.define_singleton_method("memory_of", function!(memory::memory_of, 1))?;
    native.define_singleton_method("start_time", function!(memory::start_time, 1))?;
    native.define_singleton_method("allocator", function!(allocator::allocator, 0))?;
    native.define_singleton_method("jemalloc_stats", function!(allocator::jemalloc_stats, 0))?;
    native.define_singleton_method("bundled_jemalloc_stats", function!(allocator::bundled_jemalloc_stats, 0))?;
    native.define_singleton_method("jemalloc_purge", function!(allocator::jemalloc_purge, 0))?;
    native.define_singleton_method("trim", function!(trim::trim, 1))?;
    native.define_singleton_method("mallopt", function!(mallopt::mallopt, 2))?;
    native.const_set("MALLOC_PARAMETERS", mallopt::parameters(ruby)?)?;
    native.define_singleton_method("thread_arena", function!(thread_arena::thread_arena, 0))?;
    native.define_singleton_method("cgroup", function!(cgroup::cgroup, 0))?;
    native.const_set("THRESHOLDS", diagnosis::defaults(ruby)?)?;
    native.const_set("VERDICTS", diagnosis::verdicts(ruby, false)?)?;
    native.const_set("FREEABLE_VERDICTS", diagnosis::verdicts(ruby, true)?)?;
    native.const_set("TREND_MIN_SAMPLES", bloat_probe_core::trend::MIN_SAMPLES)?;
    native.const_set("TREND_MIN_SECONDS", bloat_probe_core::trend::MIN_SECONDS)?;
    native.define_singleton_method("thresholds", function!(diagnosis::thresholds, 1))?;
    native.define_singleton_method("moment", function!(diagnosis::moment, 5))?;
    native.const_set("READINGS", diagnosis::readings(ruby)?)?;
    native.define_singleton_method("judge", function!(diagnosis::judge, 5))?;
    native.define_singleton_method("churn", function!(churn::churn, -1))?;
    native.define_singleton_method("churn_worst_case_bytes", function!(churn::worst_case_bytes, -1))?;
    native.const_set("CHURN_LIMITS", churn::limits(ruby)?)?;
    native.define_singleton_method("retain_limit", function!(churn::retain_limit, 0))?;
    native.define_singleton_method("retain_limit=", function!(churn::set_retain_limit, 1))?;
    native.define_singleton_method("retained_bytes", function!(churn::retained_bytes, 0))?;
    native.define_singleton_method("outside_command", function!(outside_command::outside_command, 1))?;
    attribution_ledger::define(ruby, native)?;
    metrics_listener::define(ruby, module)?;
    retained::define(ruby, module)
}
