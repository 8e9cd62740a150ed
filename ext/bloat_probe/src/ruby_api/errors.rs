//! Ruby exceptions for the core's errors. BloatProbe's own classes are defined in
//! lib/bloat_probe.rb, before this library loads.

use magnus::{prelude::*, value::ReprValue, Error, ExceptionClass, RArray, RHash, RModule, RString, Ruby, Value};

/// At most this many characters of a bad value go into a message.
const EXCERPT_CHARS: usize = 60;

pub fn arg_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}

pub fn range_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_range_error(), message.into())
}

/// `name must be a Kind, got value (Class)`.
pub fn type_error(ruby: &Ruby, name: &str, expected: &str, got: Value) -> Error {
    let class = got.class().inspect();
    Error::new(ruby.exception_type_error(), format!("{name} must be {expected}, got {} ({class})", excerpt(got)))
}

/// A bad value as a message shows it, short whatever its size: a 50 MB Array would make a
/// 50 MB message. Collections are described, never inspected; anything else is cut.
pub fn excerpt(value: Value) -> String {
    if let Some(array) = RArray::from_value(value) {
        return format!("an Array of {} elements", array.len());
    }
    if let Some(hash) = RHash::from_value(value) {
        return format!("a Hash of {} pairs", hash.len());
    }
    if let Some(string) = RString::from_value(value) {
        if string.len() > EXCERPT_CHARS {
            return format!("a String of {} bytes", string.len());
        }
    }
    let text = value.inspect();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// An error of one of BloatProbe's classes (Error, NotGlibcError, RetainLimitError, …).
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
