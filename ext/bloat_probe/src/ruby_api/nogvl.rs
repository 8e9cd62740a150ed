//! Runs Rust work with Ruby's GVL released, so other Ruby threads keep running, and with
//! an unblocking function so Thread#kill and Ctrl-C can stop it.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::errors::{check_interrupts, probe_error, ProbeClass};
use bloat_probe_core::panic_boundary::catch_panic;
use magnus::{Error, Ruby};

struct Call<F, R> {
    work: Option<F>,
    result: Option<Result<R, String>>,
}

unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: data is the &mut Call that without_gvl passed, alive for this whole call.
    let call = unsafe { &mut *data.cast::<Call<F, R>>() };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_panic(work));
    }
    ptr::null_mut()
}

unsafe extern "C" fn request_cancel(flag: *mut c_void) {
    // SAFETY: flag is the &AtomicBool that without_gvl passed; it outlives the call.
    unsafe { &*flag.cast::<AtomicBool>() }.store(true, Ordering::Relaxed);
}

/// Calls `work` without the GVL. When Ruby wants the thread back it sets `cancel`; the
/// work must poll it and return soon, after which the caller lets Ruby act on the
/// interrupt with `check_interrupts`. A panic in `work` becomes a BloatProbe::Error.
pub fn without_gvl<F, R>(ruby: &Ruby, cancel: &AtomicBool, work: F) -> Result<R, Error>
where
    F: FnOnce() -> R,
{
    let mut call = Call { work: Some(work), result: None };
    loop {
        // The "2" variant returns instead of raising a pending interrupt: a raise here
        // would longjmp over these Rust frames and skip their destructors.
        // SAFETY: both pointers stay valid until the call returns; the work touches no
        // Ruby object, and the unblocking function only stores to an atomic.
        unsafe {
            rb_sys::rb_thread_call_without_gvl2(
                Some(trampoline::<F, R>),
                ptr::addr_of_mut!(call).cast(),
                Some(request_cancel),
                (cancel as *const AtomicBool).cast_mut().cast(),
            );
        }
        match call.result.take() {
            Some(Ok(value)) => return Ok(value),
            Some(Err(message)) => {
                return Err(probe_error(ruby, ProbeClass::Error, format!("native code panicked: {message}")));
            }
            // Ruby skips the call while any interrupt is pending, a thread-switch timer
            // tick included: serve it (raising if it is a real one), then try again.
            None => {
                cancel.store(false, Ordering::Relaxed);
                check_interrupts()?;
            }
        }
    }
}
