//! Readings go to Ruby as Hashes with Symbol keys, built from their schema (see
//! bloat_probe_core::schema); lib/bloat_probe/readings.rb makes them values from the same schema.

use bloat_probe_core::schema::{Reading, Schema, Value};
use bloat_probe_core::{
    allocator, arena_stats, cgroup, diagnosis, glibc, malloc_info, malloc_stats, procfs, thread_arena, trend, workload,
};
use magnus::value::{OpaqueId, ReprValue};
use magnus::{Error, IntoValue, RArray, RHash, Ruby};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Every reading Ruby sees, nested ones included; a nested reading after its parent.
const READINGS: [&Schema; 15] = [
    &glibc::Mallinfo::SCHEMA,
    &glibc::TrimResult::SCHEMA,
    &procfs::MemoryReading::SCHEMA,
    &allocator::Allocator::SCHEMA,
    &allocator::JemallocStats::SCHEMA,
    &malloc_info::Arena::SCHEMA,
    &arena_stats::ArenaStats::SCHEMA,
    &arena_stats::GlibcArenas::SCHEMA,
    &malloc_stats::MallocStats::SCHEMA,
    &malloc_stats::ArenaLine::SCHEMA,
    &workload::ChurnResult::SCHEMA,
    &thread_arena::ThreadArena::SCHEMA,
    &cgroup::Cgroup::SCHEMA,
    &trend::Trend::SCHEMA,
    &diagnosis::Diagnosis::SCHEMA,
];

/// Every field's name as a Ruby Symbol, interned once (schemas, at init): interning it
/// at each reading would cost more than the reading of statm itself.
static KEYS: OnceLock<HashMap<&'static str, OpaqueId>> = OnceLock::new();

/// A reading's Hash: one key per declared field, nested readings as Hashes too. An
/// Object field is nil here, for the caller to fill.
pub fn to_hash(ruby: &Ruby, reading: &dyn Reading) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    let keys = KEYS.get();
    for (field, value) in reading.schema().fields.iter().zip(reading.values()) {
        let value = to_value(ruby, value)?;
        match keys.and_then(|keys| keys.get(field.name)) {
            Some(&key) => hash.aset(key, value)?,
            None => hash.aset(ruby.to_symbol(field.name), value)?,
        }
    }
    Ok(hash)
}

/// A flat reading's values as an Array, in its schema's order: what a reading taken on
/// every request crosses as (BloatProbe.memory), where building a Hash would cost more than
/// the reading itself. Nested readings have no place here.
pub fn to_array(ruby: &Ruby, reading: &dyn Reading) -> Result<RArray, Error> {
    let values = reading.values();
    let array = ruby.ary_new_capa(values.len());
    for value in values {
        array.push(to_value(ruby, value)?)?;
    }
    Ok(array)
}

fn to_value(ruby: &Ruby, value: Value<'_>) -> Result<magnus::Value, Error> {
    Ok(match value {
        Value::Int(n) => n.into_value_with(ruby),
        Value::Float(f) => f.into_value_with(ruby),
        Value::Flag(flag) => flag.into_value_with(ruby),
        Value::Text(text) => text.into_value_with(ruby),
        Value::Texts(texts) => {
            let list = ruby.ary_new_capa(texts.len());
            for text in texts {
                list.push(text.as_str())?;
            }
            list.as_value()
        }
        Value::Name(name) => ruby.to_symbol(name).as_value(),
        Value::Nil | Value::Object => ruby.qnil().as_value(),
        Value::One(nested) => to_hash(ruby, nested)?.as_value(),
        Value::Many(nested) => {
            // Each Hash goes straight into the Ruby Array, where the GC sees it.
            let list = ruby.ary_new_capa(nested.len());
            for reading in nested {
                list.push(to_hash(ruby, reading)?)?;
            }
            list.as_value()
        }
    })
}

/// BloatProbe::Native::SCHEMAS: class name => [[field, unit, nested class or nil], …].
pub fn schemas(ruby: &Ruby) -> Result<RHash, Error> {
    KEYS.get_or_init(|| {
        let fields = READINGS.into_iter().flat_map(|schema| schema.fields.iter());
        fields.map(|field| (field.name, OpaqueId::from(ruby.intern(field.name)))).collect()
    });
    let schemas = ruby.hash_new();
    for schema in READINGS {
        let fields: RArray = ruby.ary_new_capa(schema.fields.len());
        for field in schema.fields {
            let nested = field.unit.nested().map(|nested| nested.class);
            fields.push((ruby.to_symbol(field.name), ruby.to_symbol(field.unit.name()), nested))?;
        }
        fields.freeze();
        schemas.aset(schema.class, fields)?;
    }
    schemas.freeze();
    Ok(schemas)
}
