//! BloatProbe.churn: the workload, run with the GVL released, and the retain limit.

use super::args::{choice, integer, number};
use super::errors::{check_interrupts, probe_error, range_error, ProbeClass};
use super::retained::Retained;
use super::Fields;
use super::nogvl::without_gvl;
use crate::workload::{self, Churn, ChurnError, ChurnSpec, Distribution, Source, Step};
use magnus::scan_args::{get_kwargs, scan_args};
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

fn spec_from(ruby: &Ruby, args: &[Value]) -> Result<ChurnSpec, Error> {
    let args = scan_args::<(), (), (), (), RHash, ()>(args)?;
    let options = get_kwargs::<_, (), Options, ()>(args.keywords, &[], &KEYWORDS)?.optional;
    let (count, min_size, max_size, distribution, retain, window, seed, threads, source) = options;
    let mut spec = ChurnSpec::default();
    if let Some(v) = count {
        spec.count = integer(ruby, "count", v, 1, workload::MAX_COUNT)?;
    }
    if let Some(v) = min_size {
        spec.min_size = integer(ruby, "min_size", v, 1, workload::MAX_BLOCK_SIZE)?;
    }
    if let Some(v) = max_size {
        spec.max_size = integer(ruby, "max_size", v, 1, workload::MAX_BLOCK_SIZE)?;
    }
    if let Some(v) = distribution {
        spec.distribution = [Distribution::LogUniform, Distribution::Uniform][choice(ruby, "distribution", v, &DISTRIBUTIONS)?];
    }
    if let Some(v) = retain {
        spec.retain = number(ruby, "retain", v)?;
    }
    if let Some(v) = window {
        spec.window = integer(ruby, "window", v, 0, workload::MAX_WINDOW)?;
    }
    if let Some(v) = seed {
        spec.seed = integer(ruby, "seed", v, 0, i64::MAX as u64)?;
    }
    if let Some(v) = threads {
        spec.threads = Some(integer(ruby, "threads", v, 1, workload::MAX_THREADS)?);
    }
    if let Some(v) = source {
        spec.source = Source::ALL[choice(ruby, "allocator", v, &Source::ALL.map(Source::name))?];
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
            Step::Paused => {
                pause.store(false, Ordering::Relaxed);
                check_interrupts()?;
            }
        }
    };
    let fields = Fields::new(ruby);
    fields.set("allocations", outcome.allocations)?;
    fields.set("bytes", outcome.bytes)?;
    fields.set("retained_count", outcome.retained.count())?;
    fields.set("retained_bytes", outcome.retained.bytes())?;
    fields.set("elapsed", outcome.elapsed.as_secs_f64())?;
    fields.set("threads", outcome.threads)?;
    fields.set("allocator", ruby.to_symbol(spec.source.name()))?;
    fields.set("retained", Retained::new(outcome.retained, spec.source))?;
    Ok(fields.into_hash())
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
