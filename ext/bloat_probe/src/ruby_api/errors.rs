//! Ruby exceptions for the core's errors. BloatProbe's own classes are defined in
//! lib/bloat_probe.rb, before this library loads.

use magnus::{prelude::*, value::ReprValue, Error, ExceptionClass, RModule, Ruby, Value};

pub fn arg_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}

pub fn range_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_range_error(), message.into())
}

/// `name must be a Kind, got value (Class)`.
pub fn type_error(ruby: &Ruby, name: &str, expected: &str, got: Value) -> Error {
    let class = got.class().inspect();
    Error::new(ruby.exception_type_error(), format!("{name} must be {expected}, got {} ({class})", got.inspect()))
}

/// An error of one of BloatProbe's classes (Error, NotGlibcError, Interrupted, …).
pub fn probe_error(ruby: &Ruby, class_name: &str, message: impl Into<String>) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("BloatProbe")
        .and_then(|module| module.const_get::<_, ExceptionClass>(class_name));
    match class {
        Ok(class) => Error::new(class, message.into()),
        Err(e) => e,
    }
}

pub fn io_error(ruby: &Ruby, what: &str, e: std::io::Error) -> Error {
    probe_error(ruby, "Error", format!("{what}: {e}"))
}

/// Lets Ruby act on an interrupt that arrived while the GVL was released: raises the
/// pending exception (Thread#raise, Ctrl-C) or carries a Thread#kill up the stack.
pub fn check_interrupts() -> Result<(), Error> {
    magnus::rb_sys::protect(|| {
        // SAFETY: called with the GVL held, inside protect, which catches the longjmp.
        unsafe { rb_sys::rb_thread_check_ints() };
        rb_sys::Qnil as rb_sys::VALUE
    })
    .map(|_| ())
}
