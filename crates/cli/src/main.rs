//! bloat-probe: another running process's memory, glibc arenas and verdict, read from
//! outside. See `bloat-probe --help`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Ctrl-C ends the process as it would any command: nothing needs stopping first.
    ExitCode::from(bloat_probe_cli::run(&args, &AtomicBool::new(false)))
}
