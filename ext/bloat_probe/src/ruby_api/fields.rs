//! Readings go to Ruby as Hashes with Symbol keys; lib/bloat_probe.rb makes them values.

use magnus::{Error, IntoValue, RHash, Ruby};

/// A Hash with Symbol keys, filled one field at a time.
pub struct Fields<'a> {
    ruby: &'a Ruby,
    hash: RHash,
}

impl<'a> Fields<'a> {
    pub fn new(ruby: &'a Ruby) -> Self {
        Fields { ruby, hash: ruby.hash_new() }
    }

    pub fn set(&self, key: &str, value: impl IntoValue) -> Result<(), Error> {
        self.hash.aset(self.ruby.to_symbol(key), value)
    }

    pub fn into_hash(self) -> RHash {
        self.hash
    }
}
