//! What a churn call is asked to do, its bounds, and what it can hold at worst.

use std::fmt;

use super::retain_limit::retain_limit;
use super::{ChurnAllocator, Distribution};

/// An option's allowed values, from min to max inclusive: checked here, and shown to Ruby
/// (BloatProbe.churn_limits) from the same constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

pub const THREADS: Bounds = Bounds { min: 1, max: 64 };
pub const COUNT: Bounds = Bounds { min: 1, max: 1_000_000_000 };
/// A block's size, for min_size and max_size alike.
pub const BLOCK_SIZE: Bounds = Bounds { min: 1, max: 64 << 20 };
pub const WINDOW: Bounds = Bounds { min: 0, max: 1 << 20 };
pub const RETAIN: (f64, f64) = (0.0, 1.0);

#[derive(Debug, Clone, PartialEq)]
pub struct ChurnSpec {
    /// Allocations per thread.
    pub count: u64,
    pub min_size: u64,
    pub max_size: u64,
    pub distribution: Distribution,
    /// Fraction of blocks kept after the call returns, 0.0..=1.0.
    pub retain: f64,
    /// Transient blocks alive at once per thread; each new one frees a random older one.
    pub window: u64,
    pub seed: u64,
    /// None: run on the calling thread. Some(n): n native threads at once.
    pub threads: Option<u64>,
    pub allocator: ChurnAllocator,
}

impl Default for ChurnSpec {
    fn default() -> Self {
        ChurnSpec {
            count: 10_000,
            min_size: 24,
            max_size: 32 << 10,
            distribution: Distribution::LogUniform,
            retain: 0.0,
            window: 256,
            seed: 1,
            threads: None,
            allocator: ChurnAllocator::System,
        }
    }
}

/// A value out of its allowed range; the message names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_range(name: &str, value: u64, Bounds { min, max }: Bounds) -> Result<(), RangeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RangeError(format!("{name} must be in {min}..{max}, got {value}")))
    }
}

impl ChurnSpec {
    /// Every bound, and what the call could hold at once against the retain limit.
    pub fn validate(&self) -> Result<(), RangeError> {
        self.check_bounds()?;
        let transient = self.transient_bytes();
        let limit = retain_limit() as u64;
        if transient > limit {
            return Err(RangeError(format!(
                "threads × min(window, count) × max_size = {transient} bytes could be held at once, over the retain limit of {limit} bytes"
            )));
        }
        Ok(())
    }

    /// Each option within its bounds.
    pub fn check_bounds(&self) -> Result<(), RangeError> {
        check_range("count", self.count, COUNT)?;
        check_range("min_size", self.min_size, BLOCK_SIZE)?;
        check_range("max_size", self.max_size, Bounds { min: self.min_size, ..BLOCK_SIZE })?;
        check_range("window", self.window, WINDOW)?;
        if let Some(threads) = self.threads {
            check_range("threads", threads, THREADS)?;
        }
        let (least, most) = RETAIN;
        if !(least..=most).contains(&self.retain) {
            return Err(RangeError(format!("retain must be in {least:.1}..{most:.1}, got {}", self.retain)));
        }
        Ok(())
    }

    /// The most the call's transient blocks can hold at once, every one at its largest. A
    /// window wider than count never fills: count blocks are all there are.
    pub fn transient_bytes(&self) -> u64 {
        self.threads.unwrap_or(1) * self.window.min(self.count) * self.max_size
    }

    /// The most the call can hold at once: its transient blocks and the ones it keeps
    /// (`retain` of `count`, rounded up), every one at its largest.
    pub fn worst_case_bytes(&self) -> u64 {
        let kept = (self.count as f64 * self.retain).ceil() as u64;
        self.transient_bytes() + self.threads.unwrap_or(1) * kept * self.max_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChurnSpec {
        ChurnSpec { count: 2_000, ..ChurnSpec::default() }
    }

    #[test]
    fn validation_names_the_value_and_the_range() {
        let bad = ChurnSpec { min_size: 100, max_size: 10, ..spec() };
        assert_eq!(bad.validate().unwrap_err().0, "max_size must be in 100..67108864, got 10");
        let bad = ChurnSpec { retain: 1.5, ..spec() };
        assert_eq!(bad.validate().unwrap_err().0, "retain must be in 0.0..1.0, got 1.5");
        let bad = ChurnSpec { threads: Some(65), ..spec() };
        assert!(bad.validate().unwrap_err().0.starts_with("threads must be in 1..64"));
        assert!(ChurnSpec { count: 0, ..spec() }.validate().is_err());
    }

    #[test]
    fn a_window_wider_than_count_holds_only_count_blocks() {
        // 10 blocks of 64 MiB at most, whatever the window: under the 2 GiB limit.
        let few = ChurnSpec { count: 10, window: WINDOW.max, min_size: 1, max_size: BLOCK_SIZE.max, ..spec() };
        assert_eq!(few.validate(), Ok(()));
        let many = ChurnSpec { count: 40, ..few };
        assert!(many
            .validate()
            .unwrap_err()
            .0
            .starts_with("threads × min(window, count) × max_size = 2684354560 bytes"));
        assert!(ChurnSpec { retain: f64::NAN, ..spec() }.validate().is_err());
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn the_worst_case_counts_the_window_and_the_kept_blocks_at_their_largest() {
        let s = ChurnSpec { count: 2_000, window: 2_000, retain: 0.01, max_size: 1 << 10, ..spec() };
        assert_eq!(s.worst_case_bytes(), (2_000 + 20) << 10);
        let threads = ChurnSpec { threads: Some(3), ..s };
        assert_eq!(threads.worst_case_bytes(), 3 * ((2_000 + 20) << 10));
    }
}
