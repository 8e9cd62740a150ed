//! BloatProbe.churn: the workload, run with the GVL released, and the retain limit.

use super::args::{choice, integer, number};
use super::errors::{check_interrupts, probe_error, range_error, ProbeClass};
use super::fields::to_hash;
use super::nogvl::without_gvl;
use super::retained::Retained;
use bloat_probe_core::workload::{self, Bounds, Churn, ChurnAllocator, ChurnError, ChurnSpec, Distribution, Step};
use magnus::scan_args::{get_kwargs, scan_args};
use magnus::value::ReprValue;
use magnus::{Error, RHash, Ruby, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long churn works with the GVL released before it takes the GVL back, so that Ruby
/// can act on signals. MRI looks at a signal only when some thread waits for the GVL:
/// with another thread running Ruby code and this one never coming back, Ctrl-C was
/// ignored for good.
const SLICE: Duration = Duration::from_millis(50);

const KEYWORDS: [&str; 9] =
    ["count", "min_size", "max_size", "distribution", "retain", "window", "seed", "threads", "allocator"];
const DISTRIBUTIONS: [&str; 2] = ["log_uniform", "uniform"];

type Options = (
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Option<Value>,
);

/// An Integer option within its bounds.
fn bounded(ruby: &Ruby, name: &str, value: Value, Bounds { min, max }: Bounds) -> Result<u64, Error> {
    integer(ruby, name, value, min, max)
}

fn spec_from(ruby: &Ruby, args: &[Value]) -> Result<ChurnSpec, Error> {
    let args = scan_args::<(), (), (), (), RHash, ()>(args)?;
    let options = get_kwargs::<_, (), Options, ()>(args.keywords, &[], &KEYWORDS)?.optional;
    let (count, min_size, max_size, distribution, retain, window, seed, threads, allocator) = options;
    let mut spec = ChurnSpec::default();
    if let Some(v) = count {
        spec.count = bounded(ruby, "count", v, workload::COUNT)?;
    }
    if let Some(v) = min_size {
        spec.min_size = bounded(ruby, "min_size", v, workload::BLOCK_SIZE)?;
    }
    if let Some(v) = max_size {
        spec.max_size = bounded(ruby, "max_size", v, workload::BLOCK_SIZE)?;
    }
    if let Some(v) = distribution {
        spec.distribution =
            [Distribution::LogUniform, Distribution::Uniform][choice(ruby, "distribution", v, &DISTRIBUTIONS)?];
    }
    if let Some(v) = retain {
        spec.retain = number(ruby, "retain", v)?;
    }
    if let Some(v) = window {
        spec.window = bounded(ruby, "window", v, workload::WINDOW)?;
    }
    if let Some(v) = seed {
        spec.seed = integer(ruby, "seed", v, 0, i64::MAX as u64)?;
    }
    if let Some(v) = threads {
        spec.threads = Some(bounded(ruby, "threads", v, workload::THREADS)?);
    }
    if let Some(v) = allocator {
        spec.allocator =
            ChurnAllocator::ALL[choice(ruby, "allocator", v, &ChurnAllocator::ALL.map(ChurnAllocator::name))?];
    }
    // Checked by Churn::start, whose ChurnError::Invalid becomes a RangeError below.
    Ok(spec)
}

/// Runs the call a slice at a time without the GVL. Between slices, and whenever Ruby
/// asks for the thread back (Thread#kill, #raise, #wakeup, Ctrl-C), Ruby acts on what is
/// pending: an exception drops the call, which frees all it took; nothing pending (a
/// wakeup, a timer tick), the call goes on.
pub fn churn(ruby: &Ruby, args: &[Value]) -> Result<RHash, Error> {
    let spec = spec_from(ruby, args)?;
    let mut churn = Churn::start(&spec).map_err(|e| churn_error(ruby, e))?;
    let pause = AtomicBool::new(false);
    let outcome = loop {
        match without_gvl(ruby, &pause, || churn.run_for(SLICE, &pause))? {
            Step::Done(result) => break result.map_err(|e| churn_error(ruby, e))?,
            Step::Paused(more) => {
                churn = more;
                pause.store(false, Ordering::Relaxed);
                check_interrupts()?;
            }
        }
    };
    let result = outcome.into_result(spec.allocator);
    let hash = to_hash(ruby, &result)?;
    hash.aset(ruby.to_symbol("retained"), Retained::new(result.retained, spec.allocator))?;
    Ok(hash)
}

/// The most a churn call with these options can hold at once (ChurnSpec::worst_case_bytes),
/// each option checked against its bounds as churn checks it. The retain limit is not
/// applied: the caller may want the figure to refuse the call itself.
pub fn worst_case_bytes(ruby: &Ruby, args: &[Value]) -> Result<u64, Error> {
    let spec = spec_from(ruby, args)?;
    spec.check_bounds().map_err(|e| range_error(ruby, e.0))?;
    Ok(spec.worst_case_bytes())
}

/// BloatProbe::Native::CHURN_LIMITS: each option's allowed range, as churn checks it.
pub fn limits(ruby: &Ruby) -> Result<RHash, Error> {
    let limits = ruby.hash_new();
    let range = |Bounds { min, max }: Bounds| ruby.range_new(min, max, false);
    limits.aset(ruby.to_symbol("count"), range(workload::COUNT)?)?;
    limits.aset(ruby.to_symbol("size"), range(workload::BLOCK_SIZE)?)?;
    limits.aset(ruby.to_symbol("window"), range(workload::WINDOW)?)?;
    limits.aset(ruby.to_symbol("threads"), range(workload::THREADS)?)?;
    let (least, most) = workload::RETAIN;
    limits.aset(ruby.to_symbol("retain"), ruby.range_new(least, most, false)?)?;
    let defaults = ChurnSpec::default();
    let sizes = Bounds { min: defaults.min_size, max: defaults.max_size };
    limits.aset(ruby.to_symbol("default_sizes"), range(sizes)?)?;
    limits.freeze();
    Ok(limits)
}

fn churn_error(ruby: &Ruby, error: ChurnError) -> Error {
    match error {
        ChurnError::Invalid(e) => range_error(ruby, e.0),
        e @ ChurnError::LimitExceeded { .. } => probe_error(ruby, ProbeClass::RetainLimitError, e.to_string()),
        e => probe_error(ruby, ProbeClass::Error, e.to_string()),
    }
}

pub fn retain_limit() -> usize {
    workload::retain_limit()
}

pub fn set_retain_limit(ruby: &Ruby, bytes: Value) -> Result<usize, Error> {
    let bytes = integer(ruby, "retain_limit", bytes, 1, i64::MAX as u64)?;
    workload::set_retain_limit(bytes as usize);
    Ok(bytes as usize)
}

pub fn retained_bytes() -> usize {
    workload::retained_bytes()
}
