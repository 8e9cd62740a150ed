//! Parses the text that glibc's `malloc_stats()` prints:
//! per arena "Arena N:", "system bytes = …", "in use bytes = …", then the totals.

use crate::parse_error::ParseError;
use crate::reading;
use crate::schema::Unit::{Bytes, Count, Readings, Text};

reading! {
    /// One arena's "Arena N:" block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ArenaLine as "MallocStats::Arena" {
        index: u64 => Count,
        system: u64 => Bytes,
        in_use: u64 => Bytes,
    }
}

reading! {
    /// What malloc_stats() printed, as text and parsed. `system` and `in_use` are the
    /// "Total (incl. mmap)" lines: they include chunks mmapped outside the arenas.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct MallocStats as "MallocStats" {
        text: String => Text,
        arenas: Vec<ArenaLine> => Readings(&ArenaLine::SCHEMA),
        system: u64 => Bytes,
        in_use: u64 => Bytes,
        max_mmap_regions: u64 => Count,
        max_mmap_bytes: u64 => Bytes,
    }
}

fn error(detail: impl Into<String>) -> ParseError {
    ParseError { report: "malloc_stats", detail: detail.into() }
}

pub fn parse(text: &str) -> Result<MallocStats, ParseError> {
    let mut stats = MallocStats { text: text.to_owned(), ..MallocStats::default() };
    let mut in_totals = false;
    let mut saw_totals = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(index) = line.strip_prefix("Arena ").and_then(|rest| rest.strip_suffix(':')) {
            let index = index.parse().map_err(|_| error(format!("bad arena header {line:?}")))?;
            stats.arenas.push(ArenaLine { index, system: 0, in_use: 0 });
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
            ("system bytes", Some(a)) => a.system = value,
            ("in use bytes", Some(a)) => a.in_use = value,
            ("system bytes", None) => stats.system = value,
            ("in use bytes", None) => stats.in_use = value,
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
        assert!(stats.arenas.iter().all(|a| a.system >= a.in_use && a.system > 0));
        assert_eq!(stats.max_mmap_regions, 1);
        assert_eq!(stats.max_mmap_bytes, 41_947_136);
        let arena_in_use: u64 = stats.arenas.iter().map(|a| a.in_use).sum();
        // The total adds the mmapped chunk to the arenas' figures.
        assert_eq!(stats.in_use, arena_in_use + stats.max_mmap_bytes);
    }

    #[test]
    fn rejects_other_text() {
        assert!(parse("").is_err());
        assert!(parse("Arena x:\n").is_err());
        assert!(parse("hello\nTotal (incl. mmap):\n").is_err());
    }
}
