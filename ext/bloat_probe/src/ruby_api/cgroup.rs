//! BloatProbe.cgroup: the container's limits, and glibc's arena cap.

use super::allocator::live;
use super::fields::to_hash;
use bloat_probe_core::allocator::Kind;
use bloat_probe_core::cgroup;
use magnus::{Error, RHash, Ruby};

pub fn cgroup(ruby: &Ruby) -> Result<RHash, Error> {
    to_hash(ruby, &cgroup::read(live().name == Kind::Glibc))
}
