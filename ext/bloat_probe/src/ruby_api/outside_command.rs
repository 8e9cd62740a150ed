//! BloatProbe::Native.outside_command: the bloat-probe command (crates/cli) run by the
//! gem's exe/bloat-probe, so that `gem install bloat_probe` gives it without a second
//! build. It runs without the GVL; Ctrl-C or Thread#kill ends a watch at its next look.

use super::errors::check_interrupts;
use super::nogvl::without_gvl;
use magnus::{Error, RArray, Ruby};
use std::sync::atomic::AtomicBool;

/// The command's arguments (ARGV: Strings, else TypeError) to its exit code.
pub fn outside_command(ruby: &Ruby, args: RArray) -> Result<u8, Error> {
    let args: Vec<String> = args.to_vec()?;
    let stop = AtomicBool::new(false);
    let code = without_gvl(ruby, &stop, || bloat_probe_cli::run(&args, &stop))?;
    // A stop asked for by an interrupt: Ruby raises it here (Interrupt for Ctrl-C).
    check_interrupts()?;
    Ok(code)
}
