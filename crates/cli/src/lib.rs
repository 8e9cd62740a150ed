//! The bloat-probe command: another running process's memory, glibc arenas and verdict,
//! read from outside (/proc, each process's mem file included): no attaching, no signal,
//! no lock taken in it, no debug symbols. `run` is the whole command: the binary (src/main.rs) and the
//! gem's `exe/bloat-probe` (through the extension) both call it.

mod json;
mod text;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bloat_probe_core::outside::{self, Refusal, Report};
use bloat_probe_core::thresholds::Thresholds;
use bloat_probe_core::trend::Sample;

const USAGE: &str = "\
usage: bloat-probe PID [--json] [--watch SECONDS [--count N]]
       bloat-probe top [--json]

Reads a running process's memory, its allocator and glibc's arenas from outside
(/proc/PID, its mem file included): the process is never stopped, signalled or attached
to, and no lock inside it is taken. Prints the verdict and remedies that bloat_probe's
gem gives inside a process.

  --json             one JSON object: {\"memory\": …, \"arena_stats\": …, \"diagnosis\": …}
  --watch SECONDS    read again every SECONDS (0.1 to 86400) and show the trend
  --count N          with --watch: stop after N readings (default: until the process exits)
  top                every process this user may read, one line each, most free first

exit codes: 0 read; 2 bad usage; 3 no such process (or it exited); 4 not permitted;
            5 nothing to read (a zombie or a kernel thread); 1 anything else";

/// The documented exit codes (README, USAGE).
const USAGE_ERROR: u8 = 2;
const WATCH_SECONDS: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;

#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Read { pid: u32, json: bool, watch: Option<Duration>, count: Option<u64> },
    Top { json: bool },
}

/// Runs the command with its arguments (the program's name left out) and returns its exit
/// code. `stop`: set from elsewhere (the gem's unblocking function on Ctrl-C) to end a
/// watch or a top early.
pub fn run(args: &[String], stop: &AtomicBool) -> u8 {
    let command = match parse(args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("bloat-probe: {message}\n\n{USAGE}");
            return USAGE_ERROR;
        }
    };
    let thresholds = Thresholds::default();
    match command {
        Command::Help => {
            println!("{USAGE}");
            0
        }
        Command::Top { json } => {
            top(&thresholds, json, stop);
            0
        }
        Command::Read { pid, json, watch, count } => read(pid, &thresholds, json, watch, count, stop),
    }
}

/// How often a wait between readings looks at `stop`.
const STOP_POLL: Duration = Duration::from_millis(50);

fn parse(args: &[String]) -> Result<Command, String> {
    let mut json = false;
    let (mut watch, mut count, mut target) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "--watch" => {
                let value = rest.next().ok_or("--watch needs a number of seconds")?;
                let seconds: f64 = value.parse().map_err(|_| format!("--watch takes seconds, got {value:?}"))?;
                if !WATCH_SECONDS.contains(&seconds) {
                    return Err(format!("--watch {value} is out of range: 0.1 to 86400 seconds"));
                }
                watch = Some(Duration::from_secs_f64(seconds));
            }
            "--count" => {
                let value = rest.next().ok_or("--count needs a number of readings")?;
                count = Some(value.parse::<u64>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    format!("--count takes a number of readings from 1 to {}, got {value:?}", u64::MAX)
                })?);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
            other if target.is_none() => target = Some(other.to_owned()),
            other => return Err(format!("one process at a time: {other:?} is one too many")),
        }
    }
    if count.is_some() && watch.is_none() {
        return Err("--count goes with --watch".into());
    }
    match target.as_deref() {
        None => Err("which process? give a PID, or top".into()),
        Some("top") if watch.is_some() => Err("top reads once: --watch goes with a PID".into()),
        Some("top") => Ok(Command::Top { json }),
        Some(pid) => {
            let pid = pid
                .parse::<u32>()
                .ok()
                .filter(|&pid| pid >= 1 && i32::try_from(pid).is_ok())
                .ok_or_else(|| format!("{pid:?} is not a PID: a process number from 1 to {}", i32::MAX))?;
            Ok(Command::Read { pid, json, watch, count })
        }
    }
}

fn exit_code(refusal: &Refusal) -> u8 {
    match refusal {
        Refusal::NoSuchProcess(_) | Refusal::Exited(_) => 3,
        Refusal::NotPermitted { .. } => 4,
        Refusal::Zombie(_) | Refusal::KernelThread(_) => 5,
        Refusal::Other(_) => 1,
    }
}

fn read(
    pid: u32,
    thresholds: &Thresholds,
    json: bool,
    watch: Option<Duration>,
    count: Option<u64>,
    stop: &AtomicBool,
) -> u8 {
    let mut history: Vec<Sample> = Vec::new();
    let mut readings = 0u64;
    loop {
        let started = Instant::now();
        let report = match outside::read(pid, thresholds, &history) {
            Ok(report) => report,
            // A watched process that ends has been read: its last reading stands.
            Err(Refusal::Exited(_) | Refusal::NoSuchProcess(_) | Refusal::Zombie(_)) if readings > 0 => {
                eprintln!("bloat-probe: process {pid} has exited");
                return 0;
            }
            Err(refusal) => {
                eprintln!("bloat-probe: {refusal}");
                return exit_code(&refusal);
            }
        };
        readings += 1;
        if json {
            println!("{}", report_json(&report, started.elapsed()));
        } else {
            print!("{}", text::report(&report, started.elapsed(), watch.is_some()));
        }
        history.push(report.sample);
        let Some(interval) = watch else { return 0 };
        if count.is_some_and(|count| readings >= count) {
            return 0;
        }
        while started.elapsed() < interval {
            if stop.load(Ordering::Relaxed) {
                return 0;
            }
            std::thread::sleep(STOP_POLL.min(interval.saturating_sub(started.elapsed())));
        }
    }
}

fn report_json(report: &Report, took: Duration) -> String {
    let texts = |texts: &[String]| json::list(texts.iter().map(|text| json::string(text)));
    format!(
        "{{\"pid\":{},\"command\":{},\"memory\":{},\"arena_stats\":{},\"diagnosis\":{},\"cgroup\":{},\"moving_arenas\":{},\"arenas_found\":{},\"unknown\":{},\"read_seconds\":{}}}",
        report.pid,
        json::string(&report.command),
        json::reading(&report.memory),
        json::reading(&report.stats),
        json::reading(&report.diagnosis),
        json::reading(&report.cgroup),
        json::list(report.moving.iter().map(u64::to_string)),
        json::string(&report.arenas_found),
        texts(&report.unknown),
        took.as_secs_f64()
    )
}

/// Every process under /proc that this user may read, most free memory first; those it
/// may not read are counted.
fn top(thresholds: &Thresholds, json: bool, stop: &AtomicBool) {
    let mut reports = Vec::new();
    let (mut not_permitted, mut gone) = (0, 0);
    let own = std::process::id();
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for pid in pids.filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()).filter(|&pid| pid != own) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match outside::read(pid, thresholds, &[]) {
            Ok(report) => reports.push(report),
            Err(Refusal::NotPermitted { .. }) => not_permitted += 1,
            Err(Refusal::KernelThread(_) | Refusal::Zombie(_)) => {}
            Err(_) => gone += 1,
        }
    }
    reports.sort_by_key(|report| std::cmp::Reverse(report.diagnosis.free.unwrap_or(0)));
    if json {
        println!("{}", json::list(reports.iter().map(|report| report_json(report, Duration::ZERO))));
    } else {
        print!("{}", text::top(&reports, not_permitted, gone));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_and_their_mistakes() {
        assert_eq!(parsed(&["42"]), Ok(Command::Read { pid: 42, json: false, watch: None, count: None }));
        assert_eq!(
            parsed(&["--json", "42", "--watch", "2", "--count", "3"]),
            Ok(Command::Read { pid: 42, json: true, watch: Some(Duration::from_secs(2)), count: Some(3) })
        );
        assert_eq!(parsed(&["top", "--json"]), Ok(Command::Top { json: true }));
        assert_eq!(parsed(&["-h"]), Ok(Command::Help));
        assert_eq!(parsed(&[]), Err("which process? give a PID, or top".into()));
        assert_eq!(parsed(&["0"]), Err("\"0\" is not a PID: a process number from 1 to 2147483647".into()));
        assert_eq!(parsed(&["abc"]), Err("\"abc\" is not a PID: a process number from 1 to 2147483647".into()));
        assert_eq!(parsed(&["1", "--watch", "0"]), Err("--watch 0 is out of range: 0.1 to 86400 seconds".into()));
        assert_eq!(parsed(&["1", "--watch"]), Err("--watch needs a number of seconds".into()));
        assert_eq!(parsed(&["1", "--count", "2"]), Err("--count goes with --watch".into()));
        assert_eq!(parsed(&["1", "2"]), Err("one process at a time: \"2\" is one too many".into()));
        assert_eq!(parsed(&["1", "--frob"]), Err("unknown option \"--frob\"".into()));
    }
}
