//! Ruby exceptions for the core's errors. BloatProbe's own classes are defined in
//! lib/bloat_probe.rb, before this library loads.

use bloat_probe_core::moment::ReadingFailure;
use magnus::value::{Opaque, ReprValue};
use magnus::{prelude::*, Error, Exception, ExceptionClass, RModule, Ruby, Value};
use std::sync::OnceLock;

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

/// A bad value as a message shows it, by BloatProbe.excerpt's rule (lib/bloat_probe/setting.rb,
/// which the settings read before this library loads): short whatever its size.
pub fn excerpt(value: Value) -> String {
    let ruby = Ruby::get_with(value);
    ruby.class_object()
        .const_get::<_, RModule>("BloatProbe")
        .and_then(|module| module.funcall::<_, _, String>("excerpt", (value,)))
        .unwrap_or_else(|_| format!("a {}", value.class().inspect()))
}

/// BloatProbe's own exception classes, defined in lib/bloat_probe.rb before this library
/// loads.
#[derive(Debug, Clone, Copy)]
pub enum ProbeClass {
    Error,
    NotGlibcError,
    NotJemallocError,
    RetainLimitError,
    ReadingError,
}

/// The classes, looked up once when the library loads rather than by name at each raise.
static CLASSES: OnceLock<[Opaque<ExceptionClass>; 5]> = OnceLock::new();

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.class_object().const_get::<_, RModule>("BloatProbe")?;
    let class = |name: &str| module.const_get::<_, ExceptionClass>(name).map(Opaque::from);
    let classes = [
        class("Error")?,
        class("NotGlibcError")?,
        class("NotJemallocError")?,
        class("RetainLimitError")?,
        class("ReadingError")?,
    ];
    // A second load of the library finds the same constants: the first lookup stands.
    let _ = CLASSES.set(classes);
    Ok(())
}

/// An error of one of BloatProbe's classes (Error, NotGlibcError, RetainLimitError, …).
pub fn probe_error(ruby: &Ruby, class: ProbeClass, message: impl Into<String>) -> Error {
    // init runs in Init_bloat_probe before any method is defined, and fails the load if a
    // class is missing: no method can get here without the classes.
    let classes = CLASSES.get().expect("errors::init ran before any method was defined");
    Error::new(ruby.get_inner(classes[class as usize]), message.into())
}

/// A BloatProbe::ReadingError whose #reading names what could not be read.
pub fn reading_error(ruby: &Ruby, failure: ReadingFailure) -> Error {
    let classes = CLASSES.get().expect("errors::init ran before any method was defined");
    let class = ruby.get_inner(classes[ProbeClass::ReadingError as usize]);
    let exception = class.funcall::<_, _, Exception>("new", (failure.message.as_str(),)).and_then(|exception| {
        exception.funcall::<_, _, Value>("instance_variable_set", ("@reading", failure.reading.name()))?;
        Ok(exception)
    });
    match exception {
        Ok(exception) => Error::from(exception),
        Err(error) => error,
    }
}

pub fn io_error(ruby: &Ruby, what: &str, e: std::io::Error) -> Error {
    probe_error(ruby, ProbeClass::Error, format!("{what}: {e}"))
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
