//! BloatProbe.mallinfo: every mallinfo2() field.

use super::allocator::require_glibc;
use super::fields::to_hash;
use bloat_probe_core::glibc;
use magnus::{Error, RHash, Ruby};

pub fn mallinfo(ruby: &Ruby) -> Result<RHash, Error> {
    require_glibc(ruby, "mallinfo")?;
    to_hash(ruby, &glibc::mallinfo())
}
