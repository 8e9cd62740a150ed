//! bloat_probe's native extension: the thin Ruby layer over bloat_probe_core (and the
//! native metrics listener). Each file of `ruby_api` turns one reading or type into Ruby
//! values and exceptions.

mod ruby_api;

#[magnus::init]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    ruby_api::init(ruby)
}
