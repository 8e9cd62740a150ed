//! Each reading that crosses to Ruby is declared once, with the `reading!` macro: its
//! struct, its fields in order, and what each field measures. `ruby_api` turns any
//! reading into a Hash from that declaration, and Ruby builds its value classes (members,
//! byte fields, nested readings) from the same list (`BloatProbe::Native::SCHEMAS`), so a
//! field is named in one place only.

use std::time::Duration;

/// What a field holds. Ruby formats `Bytes` fields as sizes and builds nested values
/// from `Reading` and `Readings`.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Bytes,
    Count,
    /// A number of CPUs, a fraction where a quota allows part of one.
    Cpus,
    Seconds,
    Flag,
    Text,
    /// A list of texts.
    Texts,
    /// A Symbol in Ruby: an allocator's or a source's name.
    Name,
    /// Another reading, or nil.
    Reading(&'static Schema),
    /// A list of another reading, or nil.
    Readings(&'static Schema),
    /// A Ruby object the Ruby layer makes (churn's `retained` blocks).
    Object,
}

impl Unit {
    /// As Ruby names it in SCHEMAS.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::Cpus => "cpus",
            Unit::Seconds => "seconds",
            Unit::Flag => "flag",
            Unit::Text => "text",
            Unit::Texts => "texts",
            Unit::Name => "name",
            Unit::Reading(_) => "reading",
            Unit::Readings(_) => "readings",
            Unit::Object => "object",
        }
    }

    /// The nested reading's schema, for `Reading` and `Readings`.
    pub fn nested(self) -> Option<&'static Schema> {
        match self {
            Unit::Reading(schema) | Unit::Readings(schema) => Some(schema),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub unit: Unit,
}

/// A reading's declaration: the Ruby class it becomes (under BloatProbe) and its fields.
#[derive(Debug)]
pub struct Schema {
    pub class: &'static str,
    pub fields: &'static [Field],
}

/// One field's value, borrowed from the reading.
pub enum Value<'a> {
    Int(u64),
    Float(f64),
    Flag(bool),
    Text(&'a str),
    Texts(&'a [String]),
    Name(&'static str),
    Nil,
    One(&'a dyn Reading),
    Many(Vec<&'a dyn Reading>),
    /// Left for the Ruby layer to fill (Unit::Object).
    Object,
}

/// A declared reading: its schema and its values, in the schema's order.
pub trait Reading {
    fn schema(&self) -> &'static Schema;
    fn values(&self) -> Vec<Value<'_>>;
}

/// How a field's Rust type becomes a Value.
pub trait FieldValue {
    fn value(&self) -> Value<'_>;
}

impl FieldValue for u64 {
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl FieldValue for usize {
    fn value(&self) -> Value<'_> {
        Value::Int(*self as u64)
    }
}

impl FieldValue for f64 {
    fn value(&self) -> Value<'_> {
        Value::Float(*self)
    }
}

impl FieldValue for Duration {
    fn value(&self) -> Value<'_> {
        Value::Float(self.as_secs_f64())
    }
}

impl FieldValue for bool {
    fn value(&self) -> Value<'_> {
        Value::Flag(*self)
    }
}

impl FieldValue for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl FieldValue for Vec<String> {
    fn value(&self) -> Value<'_> {
        Value::Texts(self)
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Nil, FieldValue::value)
    }
}

impl<R: Reading> FieldValue for Vec<R> {
    fn value(&self) -> Value<'_> {
        Value::Many(self.iter().map(|reading| reading as &dyn Reading).collect())
    }
}

/// Declares a reading: the struct, its `SCHEMA` and its `Reading` implementation, from one
/// list of `field: Type => Unit`.
#[macro_export]
macro_rules! reading {
    (
        $(#[$meta:meta])*
        pub struct $name:ident as $class:literal {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty => $unit:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $name {
            pub const SCHEMA: $crate::schema::Schema = $crate::schema::Schema {
                class: $class,
                fields: &[ $( $crate::schema::Field { name: stringify!($field), unit: $unit } ),* ],
            };
        }

        impl $crate::schema::Reading for $name {
            fn schema(&self) -> &'static $crate::schema::Schema {
                &Self::SCHEMA
            }

            fn values(&self) -> Vec<$crate::schema::Value<'_>> {
                vec![ $( $crate::schema::FieldValue::value(&self.$field) ),* ]
            }
        }

        impl $crate::schema::FieldValue for $name {
            fn value(&self) -> $crate::schema::Value<'_> {
                $crate::schema::Value::One(self)
            }
        }
    };
}
