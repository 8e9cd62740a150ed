//! Where the verdict's lines are drawn. The defaults come from `rake bench`
//! (docs/verdict.md): under glibc's defaults the web mix and the Sidekiq jobs leave about
//! 90% of RSS free, spread over all 16 arenas with tens of MiB each; MALLOC_ARENA_MAX=2
//! leaves half of a far smaller RSS free in its two arenas; a trimmed glibc, or jemalloc
//! after its decay, little that is still resident. A process under 64 MiB of any of these
//! is healthy.

/// What a threshold's value is: a whole number of bytes (or arenas), or a share of RSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Whole,
    Share,
}

impl Kind {
    /// The values a threshold of this kind may take.
    pub const WHOLE_RANGE: (u64, u64) = (1, 1 << 50);
    pub const SHARE_RANGE: (f64, f64) = (0.0, 1.0);
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Below this, any figure is too small to matter.
    pub min_bytes: u64,
    /// Free memory the allocator holds, as a share of RSS, that is a finding.
    pub free_share: f64,
    /// An arena holding this much free counts towards the spread.
    pub arena_free_bytes: u64,
    /// Arenas holding free memory that make it fragmentation rather than retention.
    pub spread_arenas: u64,
    /// Memory in use (or the Ruby heap) as a share of RSS that is a finding.
    pub bulk_share: f64,
    /// A trend rising this fast is growth…
    pub growth_per_hour: u64,
    /// …once it has grown this much over its span.
    pub min_growth: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_bytes: 64 << 20,
            free_share: 0.25,
            arena_free_bytes: 8 << 20,
            spread_arenas: 3,
            bulk_share: 0.5,
            growth_per_hour: 64 << 20,
            min_growth: 16 << 20,
        }
    }
}

impl Thresholds {
    /// Every threshold's name and kind, in the order they are documented.
    pub const NAMES: [(&'static str, Kind); 7] = [
        ("min_bytes", Kind::Whole),
        ("free_share", Kind::Share),
        ("arena_free_bytes", Kind::Whole),
        ("spread_arenas", Kind::Whole),
        ("bulk_share", Kind::Share),
        ("growth_per_hour", Kind::Whole),
        ("min_growth", Kind::Whole),
    ];

    /// A threshold's kind, by name.
    pub fn kind(name: &str) -> Option<Kind> {
        Self::NAMES.iter().find(|(known, _)| *known == name).map(|&(_, kind)| kind)
    }

    /// One threshold's value by name, as a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        let mut copy = *self;
        Some(match copy.slot(name)? {
            Slot::Whole(field) => *field as f64,
            Slot::Share(field) => *field,
        })
    }

    /// Sets one threshold, checked: an unknown name or a value out of its kind's range is
    /// an error naming both.
    pub fn set(&mut self, name: &str, value: f64) -> Result<(), ThresholdError> {
        let out_of_range = |kind| ThresholdError::OutOfRange { name: name.to_string(), value, kind };
        match self.slot(name).ok_or_else(|| ThresholdError::Unknown(name.to_string()))? {
            Slot::Whole(field) => {
                let (min, max) = Kind::WHOLE_RANGE;
                if value.fract() != 0.0 || value < min as f64 || value > max as f64 {
                    return Err(out_of_range(Kind::Whole));
                }
                *field = value as u64;
            }
            Slot::Share(field) => {
                let (min, max) = Kind::SHARE_RANGE;
                if !(min..=max).contains(&value) {
                    return Err(out_of_range(Kind::Share));
                }
                *field = value;
            }
        }
        Ok(())
    }

    /// The field a name stands for, by its kind.
    fn slot(&mut self, name: &str) -> Option<Slot<'_>> {
        Some(match name {
            "min_bytes" => Slot::Whole(&mut self.min_bytes),
            "free_share" => Slot::Share(&mut self.free_share),
            "arena_free_bytes" => Slot::Whole(&mut self.arena_free_bytes),
            "spread_arenas" => Slot::Whole(&mut self.spread_arenas),
            "bulk_share" => Slot::Share(&mut self.bulk_share),
            "growth_per_hour" => Slot::Whole(&mut self.growth_per_hour),
            "min_growth" => Slot::Whole(&mut self.min_growth),
            _ => return None,
        })
    }
}

enum Slot<'a> {
    Whole(&'a mut u64),
    Share(&'a mut f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdError {
    Unknown(String),
    OutOfRange { name: String, value: f64, kind: Kind },
}

impl std::fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThresholdError::Unknown(name) => {
                let known: Vec<&str> = Thresholds::NAMES.iter().map(|(name, _)| *name).collect();
                write!(f, "unknown threshold :{name}; known: {}", known.join(", "))
            }
            ThresholdError::OutOfRange { name, value, kind: Kind::Share } => {
                let (min, max) = Kind::SHARE_RANGE;
                write!(f, "threshold {name} must be in {min:.1}..{max:.1}, got {value}")
            }
            ThresholdError::OutOfRange { name, value, kind: Kind::Whole } => {
                let (min, max) = Kind::WHOLE_RANGE;
                write!(f, "threshold {name} must be a whole number in {min}..{max}, got {value}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_threshold_reads_back_what_was_set_and_bad_values_name_the_range() {
        let mut thresholds = Thresholds::default();
        for (i, (name, kind)) in Thresholds::NAMES.iter().enumerate() {
            let value = if *kind == Kind::Share { 0.1 * (i as f64 + 1.0) / 2.0 } else { 1000.0 + i as f64 };
            thresholds.set(name, value).expect(name);
            assert_eq!(thresholds.get(name), Some(value), "{name}");
        }
        let error = thresholds.set("free_share", 1.5).unwrap_err().to_string();
        assert_eq!(error, "threshold free_share must be in 0.0..1.0, got 1.5");
        let error = thresholds.set("min_bytes", 0.5).unwrap_err().to_string();
        assert_eq!(error, "threshold min_bytes must be a whole number in 1..1125899906842624, got 0.5");
        let error = thresholds.set("free_ratio", 0.3).unwrap_err().to_string();
        assert!(error.starts_with("unknown threshold :free_ratio; known: min_bytes, free_share"), "{error}");
    }
}
