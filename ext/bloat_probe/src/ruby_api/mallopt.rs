//! BloatProbe.mallopt: one of glibc's malloc parameters changed at run time.

use super::allocator::require_glibc;
use super::args::{choice, integer};
use super::errors::{probe_error, ProbeClass};
use bloat_probe_core::glibc::{self, MallocParameter};
use magnus::{Error, RArray, Ruby, Value};

pub fn mallopt(ruby: &Ruby, parameter: Value, value: Value) -> Result<(), Error> {
    let names = MallocParameter::ALL.map(MallocParameter::name);
    let parameter = MallocParameter::ALL[choice(ruby, "parameter", parameter, &names)?];
    require_glibc(ruby, "mallopt")?;
    let range = parameter.range();
    let value = integer(ruby, parameter.name(), value, *range.start(), *range.end())?;
    glibc::set_parameter(parameter, value).map_err(|refused| probe_error(ruby, ProbeClass::Error, refused))
}

/// [[name, min, max], …]: the parameters and the values each takes.
pub fn parameters(ruby: &Ruby) -> Result<RArray, Error> {
    let list = ruby.ary_new();
    for parameter in MallocParameter::ALL {
        let range = parameter.range();
        list.push((ruby.to_symbol(parameter.name()), *range.start(), *range.end()))?;
    }
    Ok(list)
}
