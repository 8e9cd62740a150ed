//! The report as a person reads it: sizes in binary units, one arena a row.

use std::fmt::Write;
use std::time::Duration;

use bloat_probe_core::format::bytes;
use bloat_probe_core::outside::Report;

fn size(value: Option<u64>) -> String {
    value.map_or("unknown".into(), |value| bytes(value as f64))
}

pub fn report(report: &Report, took: Duration, watching: bool) -> String {
    let mut out = String::new();
    let (memory, stats, diagnosis) = (&report.memory, &report.stats, &report.diagnosis);
    let _ = writeln!(
        out,
        "process {} ({}): {} {}, read in {:.0} ms",
        report.pid,
        report.command,
        stats.allocator.name(),
        stats.allocator_version,
        took.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        out,
        "memory   RSS {}  PSS {}  USS {}  anon {}  swap {}",
        size(Some(memory.rss)),
        size(memory.pss),
        size(memory.uss),
        size(Some(memory.anon)),
        size(memory.swap)
    );
    if let Some(glibc) = &stats.glibc {
        let _ = writeln!(out, "arenas   {} ({})", glibc.arena_count, report.arenas_found);
        let _ = writeln!(
            out,
            "  {:>5} {:>11} {:>11} {:>11} {:>6} {:>11}",
            "arena", "system", "in use", "free", "heaps", "trimmable"
        );
        for arena in &glibc.arenas {
            let moving = if report.moving.contains(&arena.index) { "  moving: not exact" } else { "" };
            let _ = writeln!(
                out,
                "  {:>5} {:>11} {:>11} {:>11} {:>6} {:>11}{moving}",
                arena.index,
                bytes(arena.system as f64),
                bytes(arena.in_use as f64),
                bytes(arena.free as f64),
                arena.subheaps.map_or("brk".into(), |heaps| heaps.to_string()),
                bytes(arena.trimmable as f64)
            );
        }
        let _ = writeln!(
            out,
            "  {:>5} {:>11} {:>11} {:>11}",
            "total",
            bytes(glibc.system as f64),
            bytes(glibc.in_use as f64),
            bytes(glibc.free as f64)
        );
        let _ = writeln!(out, "  mmapped chunks: {} ({})", glibc.mmap_count, bytes(glibc.mmap_bytes as f64));
        let _ = writeln!(out, "trim     malloc_trim(0) would hand back about {}", size(diagnosis.trimmable));
    } else {
        let _ = writeln!(out, "arenas   none read: {}", report.arenas_found);
    }
    let _ = writeln!(out, "verdict  {}: {}", diagnosis.verdict.name(), diagnosis.explanation);
    if let Some(trend) = &diagnosis.trend {
        let _ = writeln!(
            out,
            "trend    over {} readings, {:.0} s: in use {} per hour",
            trend.samples,
            trend.seconds,
            trend.in_use_per_hour.map_or("unknown".into(), bytes)
        );
    } else if watching {
        let _ = writeln!(out, "trend    not yet: too few readings");
    }
    for (number, remedy) in diagnosis.remedies.iter().enumerate() {
        let _ = writeln!(out, "{}  {}. {remedy}", if number == 0 { "remedies" } else { "        " }, number + 1);
    }
    for unknown in &report.unknown {
        let _ = writeln!(out, "unknown from outside: {unknown}");
    }
    out
}

pub fn top(reports: &[Report], not_permitted: usize, gone: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:<16} {:>10} {:>10} {:>6} {:>10} {:>10}  verdict",
        "pid", "command", "RSS", "PSS", "arenas", "free", "trimmable"
    );
    for report in reports {
        let diagnosis = &report.diagnosis;
        let arenas = report.stats.glibc.as_ref().map_or("-".into(), |glibc| glibc.arena_count.to_string());
        let _ = writeln!(
            out,
            "{:>7} {:<16} {:>10} {:>10} {:>6} {:>10} {:>10}  {}",
            report.pid,
            report.command.chars().take(16).collect::<String>(),
            bytes(report.memory.rss as f64),
            size(report.memory.pss),
            arenas,
            diagnosis.free.map_or("-".into(), |free| bytes(free as f64)),
            diagnosis.trimmable.map_or("-".into(), |trimmable| bytes(trimmable as f64)),
            diagnosis.verdict.name()
        );
    }
    let _ = writeln!(out, "{} read; {not_permitted} not permitted (another user's: run as that user or with CAP_SYS_PTRACE); {gone} gone while read", reports.len());
    out
}
