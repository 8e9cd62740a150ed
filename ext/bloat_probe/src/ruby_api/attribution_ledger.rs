//! BloatProbe::Native::AttributionLedger: the attribution's figures, kept natively so that a
//! call's bookkeeping is one method call at its start and one at its end.

use super::allocator::live;
use super::errors::type_error;
use bloat_probe_core::attribution::{self, Ledger};
use magnus::value::{Lazy, StaticSymbol};
use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, RString, Ruby, Value};

/// A frozen String made once: a Rack env is looked up with it on every request.
macro_rules! key {
    ($text:literal) => {
        Lazy::new(|ruby| {
            let key = ruby.str_new($text);
            key.freeze();
            key
        })
    };
}

static PATH_PARAMETERS: Lazy<RString> = key!("action_dispatch.request.path_parameters");
static SINATRA_ROUTE: Lazy<RString> = key!("sinatra.route");
static REQUEST_METHOD: Lazy<RString> = key!("REQUEST_METHOD");
static PATH_INFO: Lazy<RString> = key!("PATH_INFO");
static CONTROLLER: Lazy<StaticSymbol> = Lazy::new(|ruby| ruby.sym_new("controller"));
static ACTION: Lazy<StaticSymbol> = Lazy::new(|ruby| ruby.sym_new("action"));

/// A Rack request's name once the app has run: Rails's "controller#action", Sinatra's
/// route, else the method and the path's first segment. Made here, not in Ruby: a dozen
/// Ruby steps and a String on every request cost microseconds with caches cold.
pub fn route_name(ruby: &Ruby, env: RHash) -> String {
    let present = |value: Option<Value>| value.filter(|value| value.to_bool());
    let mut name = String::with_capacity(64);
    let params = present(env.get(ruby.get_inner(&PATH_PARAMETERS))).and_then(RHash::from_value);
    if let Some(params) = params {
        let controller = present(params.get(ruby.get_inner(&CONTROLLER)));
        let action = present(params.get(ruby.get_inner(&ACTION)));
        if let (Some(controller), Some(action)) = (controller, action) {
            push_text(&mut name, controller);
            name.push('#');
            push_text(&mut name, action);
            return name;
        }
    }
    if let Some(route) = present(env.get(ruby.get_inner(&SINATRA_ROUTE))) {
        push_text(&mut name, route);
        return name;
    }
    let mut path = String::new();
    if let Some(method) = env.get(ruby.get_inner(&REQUEST_METHOD)).filter(|value| !value.is_nil()) {
        push_text(&mut name, method);
    }
    if let Some(info) = env.get(ruby.get_inner(&PATH_INFO)).filter(|value| !value.is_nil()) {
        push_text(&mut path, info);
    }
    name.push(' ');
    name.push_str(attribution::first_segment(&path));
    name
}

/// Appends a value's text: a String's bytes as they are, with no call into Ruby (each costs
/// a microsecond with caches cold); anything else by its to_s.
fn push_text(name: &mut String, value: Value) {
    match RString::from_value(value) {
        Some(text) => name.push_str(&text_of(&text)),
        None => name.push_str(&value.to_string()),
    }
}

/// A String's bytes as text, borrowed where they are UTF-8.
fn text_of(text: &RString) -> std::borrow::Cow<'_, str> {
    // SAFETY: the borrow lives no longer than `text`, and its callers use it before anything
    // calls into Ruby, so the string can be neither collected nor changed meanwhile.
    String::from_utf8_lossy(unsafe { text.as_slice() })
}

#[magnus::wrap(class = "BloatProbe::Native::AttributionLedger", free_immediately, size)]
pub struct AttributionLedger(Ledger);

impl AttributionLedger {
    /// `limit` is checked by BloatProbe::Attribution, which names the range.
    fn new(limit: usize) -> Self {
        AttributionLedger(Ledger::new(limit))
    }

    fn begin(&self) -> u64 {
        self.0.begin(live())
    }

    /// `name`: a String, or a Rack env named by its route. false for a token that has
    /// ended already.
    fn end(ruby: &Ruby, rb_self: &Self, token: u64, name: Value) -> Result<bool, Error> {
        if let Some(env) = RHash::from_value(name) {
            return Ok(rb_self.0.end(live(), token, &route_name(ruby, env)));
        }
        let Some(name) = RString::from_value(name) else {
            return Err(type_error(ruby, "name", "a String or a Rack env (Hash)", name));
        };
        Ok(rb_self.0.end(live(), token, &text_of(&name)))
    }

    fn count_own(&self, seconds: f64) {
        self.0.count_own(seconds)
    }

    /// [calls timed, CPU seconds their bookkeeping took].
    fn overhead(&self) -> (u64, f64) {
        self.0.overhead()
    }

    /// [[name, calls, raises, raised_bytes]], the largest raises first.
    fn entries(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let entries = rb_self.0.entries();
        let array = ruby.ary_new_capa(entries.len());
        for (name, tally) in entries {
            array.push((name, tally.calls, tally.raises, tally.raised_bytes))?;
        }
        Ok(array)
    }

    /// [[calls per bucket of DURATION_BOUNDS], seconds in all].
    fn durations(&self) -> (Vec<u64>, f64) {
        let (counts, sum) = self.0.durations();
        (counts.to_vec(), sum)
    }

    /// [[kernel thread id, arena index or nil, name, seen at]], live threads only.
    fn threads(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        let threads = rb_self.0.threads();
        let array = ruby.ary_new_capa(threads.len());
        for (tid, seen) in threads {
            array.push((tid, seen.arena, seen.name, seen.seen_at))?;
        }
        Ok(array)
    }
}

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("AttributionLedger", ruby.class_object())?;
    class.const_set("LIMIT", attribution::LIMIT)?;
    class.const_set("OTHER", attribution::OTHER)?;
    class.const_set("NAME_LENGTH", attribution::NAME_LENGTH)?;
    class.const_set("DURATION_BOUNDS", ruby.ary_from_vec(attribution::DURATION_BOUNDS.to_vec()).as_value())?;
    class.define_singleton_method("new", function!(AttributionLedger::new, 1))?;
    class.define_singleton_method("route_name", function!(route_name, 1))?;
    class.define_method("begin", method!(AttributionLedger::begin, 0))?;
    class.define_method("end", method!(AttributionLedger::end, 2))?;
    class.define_method("count_own", method!(AttributionLedger::count_own, 1))?;
    class.define_method("overhead", method!(AttributionLedger::overhead, 0))?;
    class.define_method("entries", method!(AttributionLedger::entries, 0))?;
    class.define_method("durations", method!(AttributionLedger::durations, 0))?;
    class.define_method("threads", method!(AttributionLedger::threads, 0))?;
    Ok(())
}
