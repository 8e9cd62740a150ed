//! bloat_probe's measuring core: glibc's readings (mallinfo2, malloc_info and malloc_stats
//! parsed, the thread's own arena), jemalloc's, /proc and the cgroup, the workload, and the
//! verdict's rules. Plain Rust with no Ruby in it, tested by `cargo test`; the gem's
//! extension (ext/bloat_probe) and the `bloat-probe` command are built on it.

pub mod allocator;
pub mod arena_stats;
pub mod attribution;
pub mod bundled_jemalloc;
pub mod cgroup;
pub mod diagnosis;
pub mod format;
pub mod glibc;
pub mod malloc_info;
pub mod malloc_stats;
pub mod moment;
pub mod outside;
pub mod panic_boundary;
pub mod parse_error;
pub mod procfs;
pub mod schema;
pub mod thread_arena;
pub mod thread_faults;
pub mod thresholds;
pub mod trend;
pub mod workload;
