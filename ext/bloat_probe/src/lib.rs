//! bloat_probe's native extension. The measuring core (glibc readings, malloc_info and
//! malloc_stats parsing, jemalloc, /proc, the workload) is plain Rust, tested by
//! `cargo test --no-default-features`; `ruby_api` turns it into Ruby values.

pub mod allocator;
pub mod arena_stats;
pub mod bundled_jemalloc;
pub mod cgroup;
pub mod glibc;
pub mod malloc_info;
pub mod malloc_stats;
pub mod metrics_listener;
pub mod panic_boundary;
pub mod parse_error;
pub mod procfs;
pub mod schema;
pub mod thread_arena;
pub mod thread_faults;
pub mod workload;

#[cfg(feature = "ruby")]
mod ruby_api;

#[cfg(feature = "ruby")]
#[magnus::init]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    ruby_api::init(ruby)
}
