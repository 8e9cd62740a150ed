//! How memory moved since the warm-up: for memory in use, the Ruby heap and RSS, the rate
//! in bytes per hour and the first sample's figure (the baseline), with how many samples
//! and seconds the line stands on. A steady working set and a leak look alike in one
//! snapshot; they differ here.
//!
//! The line goes through the floor, not through every sample: the samples are cut into up
//! to FLOOR_WINDOWS windows in a row, and the line is fitted (least squares) to each
//! window's lowest sample, what memory returns to between bursts. A burst that frees what
//! it allocated leaves the floor where it was; a leak lifts it.

use crate::reading;
use crate::schema::Unit::{Bytes, Count, Seconds};

/// Fewer samples, or a shorter span, tell nothing yet.
pub const MIN_SAMPLES: usize = 5;
pub const MIN_SECONDS: f64 = 2.0;
/// The floor's points: with fewer samples than this, each sample is its own window.
pub const FLOOR_WINDOWS: usize = 8;

/// One moment's figures, as the history keeps them. None where the figure is unknown:
/// memory in use under tcmalloc or mimalloc, the Ruby heap read from outside the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the epoch.
    pub time: f64,
    pub rss: u64,
    pub malloc_in_use: Option<u64>,
    pub ruby_heap: Option<u64>,
}

reading! {
    /// The rates are None where a sample lacks the figure.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Trend as "Trend" {
        samples: u64 => Count,
        seconds: f64 => Seconds,
        in_use_per_hour: Option<f64> => Bytes,
        ruby_heap_per_hour: Option<f64> => Bytes,
        rss_per_hour: Option<f64> => Bytes,
        baseline_in_use: Option<u64> => Bytes,
        baseline_ruby_heap: Option<u64> => Bytes,
        baseline_rss: u64 => Bytes,
    }
}

/// What a trend is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    InUse,
    RubyHeap,
}

impl Trend {
    /// Through the samples taken after the warm-up, oldest first; None while there are
    /// too few to stand on.
    pub fn of(samples: &[Sample]) -> Option<Trend> {
        let (first, last) = (samples.first()?, samples.last()?);
        let seconds = last.time - first.time;
        if samples.len() < MIN_SAMPLES || seconds < MIN_SECONDS {
            return None;
        }
        let rate = |value: &dyn Fn(&Sample) -> Option<u64>| {
            let points: Option<Vec<(f64, f64)>> =
                samples.iter().map(|sample| value(sample).map(|v| (sample.time, v as f64))).collect();
            points.map(|points| per_hour(&floor(&points)))
        };
        Some(Trend {
            samples: samples.len() as u64,
            seconds,
            in_use_per_hour: rate(&|sample| sample.malloc_in_use),
            ruby_heap_per_hour: rate(&|sample| sample.ruby_heap),
            rss_per_hour: rate(&|sample| Some(sample.rss)),
            baseline_in_use: first.malloc_in_use,
            baseline_ruby_heap: first.ruby_heap,
            baseline_rss: first.rss,
        })
    }

    pub fn per_hour_of(&self, series: Series) -> Option<f64> {
        match series {
            Series::InUse => self.in_use_per_hour,
            Series::RubyHeap => self.ruby_heap_per_hour,
        }
    }

    /// Growth over the span the line covers, in bytes.
    pub fn grown(&self, series: Series) -> Option<f64> {
        self.per_hour_of(series).map(|rate| rate * self.seconds / 3600.0)
    }
}

/// Each window's lowest point, the windows FLOOR_WINDOWS at most and of equal count.
fn floor(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let window = points.len().div_ceil(FLOOR_WINDOWS).max(1);
    points.chunks(window).filter_map(|chunk| chunk.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))).collect()
}

/// The slope of the least-squares line through (time, value), per hour.
fn per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_v = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if spread == 0.0 {
        return 0.0;
    }
    let covariance: f64 = points.iter().map(|(t, v)| (t - mean_t) * (v - mean_v)).sum();
    covariance / spread * 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(count: usize, every: f64, in_use: impl Fn(f64) -> Option<u64>) -> Vec<Sample> {
        (0..count)
            .map(|i| {
                let time = 1000.0 + i as f64 * every;
                Sample { time, rss: 100 << 20, malloc_in_use: in_use(time - 1000.0), ruby_heap: Some(20 << 20) }
            })
            .collect()
    }

    #[test]
    fn a_line_at_a_mib_a_second_reads_3600_mib_an_hour_and_a_flat_one_zero() {
        let trend = Trend::of(&samples(10, 1.0, |t| Some((50 << 20) + (t as u64) * (1 << 20)))).expect("a trend");
        assert_eq!(trend.samples, 10);
        assert_eq!(trend.seconds, 9.0);
        assert!((trend.in_use_per_hour.unwrap() - 3600.0 * 1048576.0).abs() < 1.0, "{trend:?}");
        assert!((trend.grown(Series::InUse).unwrap() - 9.0 * 1048576.0).abs() < 1.0);
        assert_eq!(trend.ruby_heap_per_hour, Some(0.0));
        assert_eq!(trend.baseline_in_use, Some(50 << 20));
    }

    /// Bursts of 100 MiB for 5 s in every 20, freed after: the floor holds. A leak of
    /// 4 MiB a second under the same bursts reads at its rate, within 25% (#25).
    #[test]
    fn bursts_that_free_what_they_allocate_leave_the_floor_and_a_leak_lifts_it() {
        let burst = |t: f64| if t % 20.0 < 5.0 { 100 << 20 } else { 0 };
        let bursts = Trend::of(&samples(120, 1.0, |t| Some((200 << 20) + burst(t)))).expect("a trend");
        let rate = bursts.in_use_per_hour.expect("a rate");
        assert!(rate.abs() < 1.0, "bursts that free what they take: {rate} bytes an hour");
        let leak_per_second = 4.0 * 1048576.0;
        let leaking = Trend::of(&samples(120, 1.0, |t| Some((200 << 20) + burst(t) + (t * leak_per_second) as u64)));
        let rate = leaking.expect("a trend").in_use_per_hour.expect("a rate");
        let truth = leak_per_second * 3600.0;
        assert!((rate - truth).abs() <= 0.25 * truth, "{rate} against {truth} bytes an hour");
    }

    #[test]
    fn too_few_samples_or_too_short_a_span_tell_nothing_and_a_missing_figure_has_no_rate() {
        assert!(Trend::of(&samples(MIN_SAMPLES - 1, 1.0, |_| Some(1))).is_none());
        assert!(Trend::of(&samples(MIN_SAMPLES, 0.1, |_| Some(1))).is_none());
        assert!(Trend::of(&[]).is_none());
        let unknown = Trend::of(&samples(MIN_SAMPLES, 1.0, |_| None)).expect("a trend of RSS");
        assert_eq!(unknown.in_use_per_hour, None);
        assert_eq!(unknown.rss_per_hour, Some(0.0));
    }
}
