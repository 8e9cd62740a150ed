//! The sizes a churn thread allocates: a seeded generator, uniform or log-uniform.

use super::ChurnSpec;

/// How block sizes spread between min_size and max_size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    /// As many blocks between 32 and 64 bytes as between 16 and 32 KiB: many small
    /// strings and a few large buffers, as in a web request.
    LogUniform,
}

/// SplitMix64: tiny, fast and deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The sizes one thread allocates, in order.
#[derive(Debug, Clone)]
pub struct Sizes {
    rng: Rng,
    min: u64,
    max: u64,
    distribution: Distribution,
}

impl Sizes {
    pub fn new(spec: &ChurnSpec, seed: u64) -> Self {
        Sizes { rng: Rng::new(seed), min: spec.min_size, max: spec.max_size, distribution: spec.distribution }
    }
}

impl Iterator for Sizes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let size = match self.distribution {
            Distribution::Uniform => self.min + self.rng.below(self.max - self.min + 1),
            Distribution::LogUniform => {
                let (low, high) = ((self.min as f64).ln(), ((self.max + 1) as f64).ln());
                ((low + self.rng.next_f64() * (high - low)).exp() as u64).clamp(self.min, self.max)
            }
        };
        Some(size)
    }
}

/// Each thread of a call draws its own sizes from the call's seed.
pub(super) fn thread_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ChurnSpec;

    fn spec() -> ChurnSpec {
        ChurnSpec { count: 2_000, ..ChurnSpec::default() }
    }

    #[test]
    fn sizes_are_deterministic_for_a_seed_and_stay_in_range() {
        let s = spec();
        let a: Vec<u64> = Sizes::new(&s, 42).take(1000).collect();
        let b: Vec<u64> = Sizes::new(&s, 42).take(1000).collect();
        let c: Vec<u64> = Sizes::new(&s, 43).take(1000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|size| (s.min_size..=s.max_size).contains(size)));
    }

    #[test]
    fn log_uniform_favours_small_blocks() {
        let s = spec();
        let sizes: Vec<u64> = Sizes::new(&s, 7).take(10_000).collect();
        let small = sizes.iter().filter(|&&size| size < 1024).count();
        // ln(1024/24) / ln(32768/24) ≈ 0.52 of the blocks are under 1 KiB.
        assert!((4_700..5_700).contains(&small), "{small}");
        let uniform = ChurnSpec { distribution: Distribution::Uniform, ..s };
        let small_uniform = Sizes::new(&uniform, 7).take(10_000).filter(|&size| size < 1024).count();
        assert!(small_uniform < 500, "{small_uniform}");
    }
}
