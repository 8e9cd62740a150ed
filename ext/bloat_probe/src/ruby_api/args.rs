//! Checks a Ruby argument's type and range, with messages that name both.

use super::errors::{arg_error, excerpt, range_error, type_error};
use magnus::{Error, Float, Integer, Ruby, Symbol, Value};

pub fn integer(ruby: &Ruby, name: &str, value: Value, min: u64, max: u64) -> Result<u64, Error> {
    let int = Integer::from_value(value).ok_or_else(|| type_error(ruby, name, "an Integer", value))?;
    int.to_i64()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| range_error(ruby, format!("{name} must be in {min}..{max}, got {}", excerpt(value))))
}

pub fn number(ruby: &Ruby, name: &str, value: Value) -> Result<f64, Error> {
    if let Some(float) = Float::from_value(value) {
        return Ok(float.to_f64());
    }
    let int = Integer::from_value(value).ok_or_else(|| type_error(ruby, name, "a Float or an Integer", value))?;
    Ok(int.to_i64().map(|n| n as f64).unwrap_or(f64::INFINITY))
}

/// One of a fixed set of symbols, returned as its index in `allowed`.
pub fn choice(ruby: &Ruby, name: &str, value: Value, allowed: &[&str]) -> Result<usize, Error> {
    let symbol = Symbol::from_value(value).ok_or_else(|| type_error(ruby, name, "a Symbol", value))?;
    let text = symbol.name()?;
    allowed.iter().position(|a| *a == text).ok_or_else(|| {
        let options: Vec<String> = allowed.iter().map(|a| format!(":{a}")).collect();
        arg_error(ruby, format!("{name} must be one of {}, got :{text}", options.join(", ")))
    })
}
