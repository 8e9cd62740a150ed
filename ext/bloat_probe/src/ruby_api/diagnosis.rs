//! BloatProbe's moments and diagnoses: the verdict's rules are the core's (diagnosis.rs);
//! Ruby gives what only it knows (its heap, the samples since the warm-up, the thresholds)
//! and gets the readings and their diagnosis back as Hashes.

use super::allocator::live;
use super::errors::{arg_error, range_error, reading_error, type_error};
use super::fields::to_hash;
use bloat_probe_core::allocator::Kind as Allocator;
use bloat_probe_core::diagnosis::{ArenaCap, Diagnosis, Figures, Phase, RubyHeap, Verdict};
use bloat_probe_core::moment::{Context, Moment, Reading};
use bloat_probe_core::thresholds::{Kind, ThresholdError, Thresholds};
use bloat_probe_core::trend::{Sample, Trend};
use magnus::value::ReprValue;
use magnus::{r_hash::ForEach, Error, Float, Integer, IntoValue, RArray, RHash, Ruby, Symbol, Value};

/// BloatProbe::Native::THRESHOLDS: every threshold's default, by name.
pub fn defaults(ruby: &Ruby) -> Result<RHash, Error> {
    to_ruby(ruby, &Thresholds::default())
}

/// The verdicts' names, in the order they are tried; and those whose memory a trim or a
/// purge gives back.
pub fn verdicts(ruby: &Ruby, freeable_only: bool) -> Result<RArray, Error> {
    let list = ruby.ary_new();
    for verdict in Verdict::ALL.iter().filter(|verdict| !freeable_only || verdict.freeable()) {
        list.push(ruby.to_symbol(verdict.name()))?;
    }
    list.freeze();
    Ok(list)
}

/// The names of the readings a moment can fail to take (Reading::ALL), as Strings.
pub fn readings(ruby: &Ruby) -> Result<RArray, Error> {
    let list = ruby.ary_new();
    for reading in Reading::ALL {
        list.push(ruby.str_new(reading.name()))?;
    }
    list.freeze();
    Ok(list)
}

/// Native.thresholds(overrides): the defaults with the overrides applied, checked: an
/// unknown name raises ArgumentError, a value of the wrong type TypeError, one out of its
/// range RangeError, each naming the threshold and what it allows.
pub fn thresholds(ruby: &Ruby, overrides: Value) -> Result<RHash, Error> {
    to_ruby(ruby, &from_ruby(ruby, overrides)?)
}

/// Native.moment([ruby_heap, ruby_heap_in_malloc, gc_malloc_limit], thresholds, warm,
/// warm_from, boot_in_use): this process read now and diagnosed (the first, a RubyHeap).
/// `warm`: [[time, rss, malloc_in_use, ruby_heap], …], the samples since the warm-up ended;
/// warm_from nil for a single reading with no history; boot_in_use nil where this is the
/// first moment.
pub fn moment(
    ruby: &Ruby,
    (bytes, in_malloc, gc_malloc_limit): (u64, bool, u64),
    thresholds: Value,
    warm: RArray,
    warm_from: Option<f64>,
    boot_in_use: Option<u64>,
) -> Result<RHash, Error> {
    let thresholds = from_ruby(ruby, thresholds)?;
    let warm: Vec<Sample> = warm
        .to_vec::<(f64, u64, Option<u64>, Option<u64>)>()?
        .into_iter()
        .map(|(time, rss, malloc_in_use, ruby_heap)| Sample { time, rss, malloc_in_use, ruby_heap })
        .collect();
    let context = Context {
        thresholds: &thresholds,
        ruby_heap: Some(RubyHeap { bytes, in_malloc, gc_malloc_limit }),
        warm: &warm,
        warm_from,
        boot_in_use,
    };
    let moment = Moment::take(live(), context).map_err(|failure| reading_error(ruby, failure))?;
    let hash = ruby.hash_new();
    hash.aset(ruby.to_symbol("arena_stats"), to_hash(ruby, &moment.stats)?)?;
    hash.aset(ruby.to_symbol("memory"), to_hash(ruby, &moment.memory)?)?;
    hash.aset(ruby.to_symbol("cgroup"), to_hash(ruby, &moment.cgroup)?)?;
    hash.aset(ruby.to_symbol("diagnosis"), to_hash(ruby, &moment.diagnosis)?)?;
    Ok(hash)
}

/// Native.judge(figures, thresholds, trend, cgroup, taken_at): the rules applied to figures
/// given as a Diagnosis's Hash has them (the readings' figures, a Trend's and a Cgroup's
/// Hashes or nil), without reading the process.
pub fn judge(
    ruby: &Ruby,
    figures: RHash,
    thresholds: Value,
    trend: Option<RHash>,
    cgroup: Option<RHash>,
    taken_at: f64,
) -> Result<RHash, Error> {
    let thresholds = from_ruby(ruby, thresholds)?;
    let allocator: String = figures.fetch(ruby.to_symbol("allocator"))?;
    let (name, version) = allocator.split_once(' ').unwrap_or((allocator.as_str(), ""));
    let kind = Allocator::ALL
        .into_iter()
        .find(|kind| kind.name() == name)
        .ok_or_else(|| arg_error(ruby, format!("unknown allocator {name:?} in {allocator:?}")))?;
    let field = |name: &str| figures.fetch::<_, Option<u64>>(ruby.to_symbol(name));
    let figures = Figures {
        allocator: kind,
        allocator_version: version.to_string(),
        rss: figures.fetch(ruby.to_symbol("rss"))?,
        pss: field("pss")?,
        uss: field("uss")?,
        malloc_in_use: field("malloc_in_use")?,
        free: field("free")?,
        trimmable: field("trimmable")?,
        arena_count: field("arena_count")?,
        arenas_holding_free: field("arenas_holding_free")?,
        ruby_heap: field("ruby_heap")?,
        ruby_gc_malloc_limit: field("ruby_gc_malloc_limit")?,
    };
    let trend = trend
        .map(|trend| -> Result<Trend, Error> {
            let rate = |name: &str| trend.fetch::<_, Option<f64>>(ruby.to_symbol(name));
            let bytes = |name: &str| trend.fetch::<_, Option<u64>>(ruby.to_symbol(name));
            Ok(Trend {
                samples: trend.fetch(ruby.to_symbol("samples"))?,
                seconds: trend.fetch(ruby.to_symbol("seconds"))?,
                in_use_per_hour: rate("in_use_per_hour")?,
                ruby_heap_per_hour: rate("ruby_heap_per_hour")?,
                rss_per_hour: rate("rss_per_hour")?,
                baseline_in_use: bytes("baseline_in_use")?,
                baseline_ruby_heap: bytes("baseline_ruby_heap")?,
                baseline_rss: trend.fetch(ruby.to_symbol("baseline_rss"))?,
            })
        })
        .transpose()?;
    let arena_cap = match cgroup {
        Some(cgroup) => {
            let count = |name: &str| cgroup.fetch::<_, Option<u64>>(ruby.to_symbol(name));
            ArenaCap::from_counts(
                cgroup.fetch::<_, Option<f64>>(ruby.to_symbol("cpu_quota"))?,
                count("cpuset_cpus")?,
                count("arena_cap")?,
                cgroup.fetch(ruby.to_symbol("online_cpus"))?,
            )
        }
        None => None,
    };
    to_hash(ruby, &Diagnosis::judge(&figures, &thresholds, trend, Phase::Snapshot, arena_cap, taken_at))
}

fn to_ruby(ruby: &Ruby, thresholds: &Thresholds) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, kind) in Thresholds::NAMES {
        let value = thresholds.get(name).unwrap_or_default();
        let value = match kind {
            Kind::Whole => (value as u64).into_value_with(ruby),
            Kind::Share => value.into_value_with(ruby),
        };
        hash.aset(ruby.to_symbol(name), value)?;
    }
    hash.freeze();
    Ok(hash)
}

fn from_ruby(ruby: &Ruby, overrides: Value) -> Result<Thresholds, Error> {
    let hash = RHash::from_value(overrides).ok_or_else(|| type_error(ruby, "thresholds", "a Hash", overrides))?;
    let mut thresholds = Thresholds::default();
    let mut failure = None;
    hash.foreach(|key: Value, value: Value| match set(ruby, &mut thresholds, key, value) {
        Ok(()) => Ok(ForEach::Continue),
        Err(error) => {
            failure = Some(error);
            Ok(ForEach::Stop)
        }
    })?;
    failure.map_or(Ok(thresholds), Err)
}

fn set(ruby: &Ruby, thresholds: &mut Thresholds, key: Value, value: Value) -> Result<(), Error> {
    let name = Symbol::from_value(key).ok_or_else(|| type_error(ruby, "a threshold's name", "a Symbol", key))?;
    let name = name.name()?;
    let kind = Thresholds::kind(&name);
    // An Integer too large for i64 is out of any range: infinity says so.
    let whole = || Integer::from_value(value).map(|int| int.to_i64().map_or(f64::INFINITY, |n| n as f64));
    let number = match kind {
        Some(Kind::Whole) => whole(),
        Some(Kind::Share) => Float::from_value(value).map(|float| float.to_f64()).or_else(whole),
        None => Some(0.0),
    };
    let Some(number) = number else {
        let expected = match kind {
            Some(Kind::Whole) => {
                let (min, max) = Kind::WHOLE_RANGE;
                format!("a whole number in {min}..{max}")
            }
            _ => {
                let (min, max) = Kind::SHARE_RANGE;
                format!("a number in {min:.1}..{max:.1}")
            }
        };
        return Err(type_error(ruby, &format!("threshold {name}"), &expected, value));
    };
    thresholds.set(&name, number).map_err(|error| match error {
        ThresholdError::Unknown(_) => arg_error(ruby, error.to_string()),
        ThresholdError::OutOfRange { .. } => range_error(ruby, error.to_string()),
    })
}
