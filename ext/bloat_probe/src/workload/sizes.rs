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

