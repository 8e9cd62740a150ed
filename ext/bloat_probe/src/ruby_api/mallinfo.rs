//! BloatProbe.mallinfo: every mallinfo2() field.

use super::allocator::require_glibc;
use super::Fields;
use crate::glibc;
use magnus::{Error, RHash, Ruby};

pub fn mallinfo(ruby: &Ruby) -> Result<RHash, Error> {
    require_glibc(ruby, "mallinfo")?;
    let m = glibc::mallinfo();
    let fields = Fields::new(ruby);
    fields.set("arena", m.arena)?;
    fields.set("ordblks", m.ordblks)?;
    fields.set("smblks", m.smblks)?;
    fields.set("hblks", m.hblks)?;
    fields.set("hblkhd", m.hblkhd)?;
    fields.set("usmblks", m.usmblks)?;
    fields.set("fsmblks", m.fsmblks)?;
    fields.set("uordblks", m.uordblks)?;
    fields.set("fordblks", m.fordblks)?;
    fields.set("keepcost", m.keepcost)?;
    Ok(fields.into_hash())
}
