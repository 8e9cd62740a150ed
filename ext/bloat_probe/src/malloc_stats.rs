//! Parses the text that glibc's `malloc_stats()` prints:
//! per arena "Arena N:", "system bytes = …", "in use bytes = …", then the totals.

use crate::parse_error::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaLine {
    pub index: u64,
    pub system_bytes: u64,
    pub in_use_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MallocStats {
    pub arenas: Vec<ArenaLine>,
    /// "Total (incl. mmap)": includes chunks mmapped outside the arenas.
    pub total_system_bytes: u64,
    pub total_in_use_bytes: u64,
    pub max_mmap_regions: u64,
    pub max_mmap_bytes: u64,
}

fn error(detail: impl Into<String>) -> ParseError {
    ParseError { report: "malloc_stats", detail: detail.into() }
}

pub fn parse(text: &str) -> Result<MallocStats, ParseError> {
    let mut stats = MallocStats::default();
    let mut in_totals = false;
    let mut saw_totals = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(index) = line.strip_prefix("Arena ").and_then(|rest| rest.strip_suffix(':')) {
            let index = index.parse().map_err(|_| error(format!("bad arena header {line:?}")))?;
            stats.arenas.push(ArenaLine { index, system_bytes: 0, in_use_bytes: 0 });
            in_totals = false;
            continue;
        }
        if line.starts_with("Total (incl. mmap)") {
            in_totals = true;
            saw_totals = true;
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| error(format!("unexpected line {line:?}")))?;
        let value: u64 = value.trim().parse().map_err(|_| error(format!("bad number in {line:?}")))?;
        let arena = stats.arenas.last_mut().filter(|_| !in_totals);
        match (key.trim(), arena) {
            ("system bytes", Some(a)) => a.system_bytes = value,
            ("in use bytes", Some(a)) => a.in_use_bytes = value,
            ("system bytes", None) => stats.total_system_bytes = value,
            ("in use bytes", None) => stats.total_in_use_bytes = value,
            ("max mmap regions", _) => stats.max_mmap_regions = value,
            ("max mmap bytes", _) => stats.max_mmap_bytes = value,
            _ => return Err(error(format!("unexpected line {line:?}"))),
        }
    }
    if !saw_totals {
        return Err(error("no \"Total (incl. mmap):\" section"));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIXTEEN: &str = include_str!("../tests/fixtures/malloc_stats_16_arenas.txt");

    #[test]
    fn reads_each_arena_and_the_totals() {
        let stats = parse(SIXTEEN).expect("parse");
        assert_eq!(stats.arenas.len(), 16);
        assert_eq!(stats.arenas[0].index, 0);
        assert_eq!(stats.arenas[15].index, 15);
        assert!(stats.arenas.iter().all(|a| a.system_bytes >= a.in_use_bytes && a.system_bytes > 0));
        assert_eq!(stats.max_mmap_regions, 1);
        assert_eq!(stats.max_mmap_bytes, 41_947_136);
        let arena_in_use: u64 = stats.arenas.iter().map(|a| a.in_use_bytes).sum();
        // The total adds the mmapped chunk to the arenas' figures.
        assert_eq!(stats.total_in_use_bytes, arena_in_use + stats.max_mmap_bytes);
    }

    #[test]
    fn rejects_other_text() {
        assert!(parse("").is_err());
        assert!(parse("Arena x:\n").is_err());
        assert!(parse("hello\nTotal (incl. mmap):\n").is_err());
    }
}
