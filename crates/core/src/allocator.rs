//! Which malloc serves this process, found at run time: an allocator preloaded with
//! LD_PRELOAD exports its own entry points, which glibc's libc does not have.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt;
use std::mem;
use std::ptr;

use crate::reading;
use crate::schema::FieldValue;
use crate::schema::Unit::{Bytes, Count, Name, Text};
use crate::schema::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Glibc,
    Jemalloc,
    Tcmalloc,
    Mimalloc,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Glibc, Kind::Jemalloc, Kind::Tcmalloc, Kind::Mimalloc];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Glibc => "glibc",
            Kind::Jemalloc => "jemalloc",
            Kind::Tcmalloc => "tcmalloc",
            Kind::Mimalloc => "mimalloc",
        }
    }
}

impl FieldValue for Kind {
    fn value(&self) -> Value<'_> {
        Value::Name(self.name())
    }
}

reading! {
    /// The malloc serving the process.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Allocator as "Allocator" {
        name: Kind => Name,
        version: String => Text,
    }
}

impl fmt::Display for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name.name(), self.version)
    }
}

type Mallctl = unsafe extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> c_int;
type TcVersion = unsafe extern "C" fn(*mut c_int, *mut c_int, *mut *const c_char) -> *const c_char;
type MiVersion = unsafe extern "C" fn() -> c_int;
type GnuGetLibcVersion = unsafe extern "C" fn() -> *const c_char;

/// The address of a global symbol in the process, as the dynamic linker resolves it.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_DEFAULT searches the loaded objects; name is NUL-terminated.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!address.is_null()).then_some(address)
}

fn c_text(text: *const c_char) -> String {
    if text.is_null() {
        return String::from("unknown");
    }
    // SAFETY: the allocators return pointers to static NUL-terminated strings.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}

pub fn detect() -> Allocator {
    if let Some(mallctl) = mallctl() {
        let version = read_mallctl::<*const c_char>(mallctl, c"version").map(c_text);
        return Allocator { name: Kind::Jemalloc, version: version.unwrap_or_else(|_| "unknown".into()) };
    }
    if let Some(address) = symbol(c"tc_version") {
        // SAFETY: tc_version has this signature in gperftools' tcmalloc.h; null outs are allowed.
        let text = unsafe {
            let tc_version: TcVersion = mem::transmute(address);
            tc_version(ptr::null_mut(), ptr::null_mut(), ptr::null_mut())
        };
        // It reads "gperftools 2.10"; keep the number alone, as for the others.
        let version = c_text(text).trim_start_matches("gperftools ").to_owned();
        return Allocator { name: Kind::Tcmalloc, version };
    }
    if let Some(address) = symbol(c"mi_version") {
        // SAFETY: mi_version takes nothing and returns e.g. 209 for 2.0.9 (mimalloc.h).
        let number = unsafe {
            let mi_version: MiVersion = mem::transmute(address);
            mi_version()
        };
        let version = format!("{}.{}.{}", number / 100, number / 10 % 10, number % 10);
        return Allocator { name: Kind::Mimalloc, version };
    }
    let version = symbol(c"gnu_get_libc_version").map(|address| {
        // SAFETY: glibc's gnu_get_libc_version returns a static version string.
        c_text(unsafe { mem::transmute::<*mut c_void, GnuGetLibcVersion>(address)() })
    });
    Allocator { name: Kind::Glibc, version: version.unwrap_or_else(|| "unknown".into()) }
}

/// A preloaded jemalloc's `mallctl`. The jemalloc bundled in this library is prefixed
/// (`_rjem_mallctl`), so this finds only the process's allocator.
fn mallctl() -> Option<Mallctl> {
    // SAFETY: jemalloc's mallctl has exactly the Mallctl signature.
    symbol(c"mallctl").map(|address| unsafe { mem::transmute::<*mut c_void, Mallctl>(address) })
}

fn read_mallctl<T: Copy>(mallctl: Mallctl, name: &CStr) -> Result<T, String> {
    let mut value = mem::MaybeUninit::<T>::uninit();
    let mut len = mem::size_of::<T>();
    // SAFETY: value has room for len bytes of the type jemalloc documents for this name.
    let rc = unsafe { mallctl(name.as_ptr(), value.as_mut_ptr().cast(), &mut len, ptr::null_mut(), 0) };
    if rc != 0 || len != mem::size_of::<T>() {
        return Err(format!("mallctl({:?}) failed with {rc}", name));
    }
    // SAFETY: mallctl succeeded and wrote exactly size_of::<T>() bytes.
    Ok(unsafe { value.assume_init() })
}

/// Which jemalloc: the process's own (LD_PRELOAD), or the one bundled in this library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JemallocSource {
    Preloaded,
    Bundled,
}

impl FieldValue for JemallocSource {
    fn value(&self) -> Value<'_> {
        Value::Name(match self {
            JemallocSource::Preloaded => "preloaded",
            JemallocSource::Bundled => "bundled",
        })
    }
}

reading! {
    /// jemalloc's own statistics, in bytes (see jemalloc's "stats.*" mallctl names).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct JemallocStats as "JemallocStats" {
        source: JemallocSource => Name,
        version: String => Text,
        allocated: u64 => Bytes,
        active: u64 => Bytes,
        resident: u64 => Bytes,
        mapped: u64 => Bytes,
        retained: u64 => Bytes,
        narenas: u64 => Count,
    }
}

/// Purges every arena of a preloaded jemalloc (`arena.<MALLCTL_ARENAS_ALL>.purge`): its
/// dirty and muzzy pages go back to the system now rather than after their decay. None
/// when jemalloc is not preloaded.
pub fn purge_preloaded_jemalloc() -> Option<Result<(), String>> {
    let mallctl = mallctl()?;
    // MALLCTL_ARENAS_ALL is 4096 in jemalloc 5.
    let name = c"arena.4096.purge";
    // SAFETY: a purge takes and returns nothing: all four pointers may be null.
    let rc = unsafe { mallctl(name.as_ptr(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) };
    Some(if rc == 0 { Ok(()) } else { Err(format!("mallctl({name:?}) failed with {rc}")) })
}

/// Reads the preloaded jemalloc's statistics, or None when jemalloc is not preloaded.
/// The calling thread's running totals of bytes allocated and freed, kept by a preloaded
/// jemalloc (`thread.allocatedp`, `thread.deallocatedp`); None under another allocator, or
/// one built without them. What a call left allocated is the difference of the two
/// differences around it: the attribution's figure where glibc's arenas are not in use.
pub fn jemalloc_thread_bytes() -> Option<(u64, u64)> {
    /// The two counters' addresses, asked of jemalloc once per thread: they stay valid
    /// for as long as the thread lives.
    type Counters = Option<(*const u64, *const u64)>;
    thread_local! {
        static COUNTERS: std::cell::OnceCell<Counters> = const { std::cell::OnceCell::new() };
    }
    let (allocated, deallocated) = COUNTERS.with(|cell| {
        *cell.get_or_init(|| {
            let mallctl = mallctl()?;
            let allocated = read_mallctl::<*const u64>(mallctl, c"thread.allocatedp").ok()?;
            let deallocated = read_mallctl::<*const u64>(mallctl, c"thread.deallocatedp").ok()?;
            (!allocated.is_null() && !deallocated.is_null()).then_some((allocated, deallocated))
        })
    })?;
    // SAFETY: jemalloc documents both as pointers to this thread's own counters, valid while
    // the thread lives; they are read on the thread that asked for them (thread_local).
    Some(unsafe { (ptr::read_volatile(allocated), ptr::read_volatile(deallocated)) })
}

pub fn preloaded_jemalloc_stats() -> Option<Result<JemallocStats, String>> {
    let mallctl = mallctl()?;
    Some(read_jemalloc_stats(mallctl))
}

fn read_jemalloc_stats(mallctl: Mallctl) -> Result<JemallocStats, String> {
    // The stats are a snapshot refreshed only when "epoch" is written.
    let mut epoch: u64 = 1;
    let mut len = mem::size_of::<u64>();
    // SAFETY: "epoch" takes and returns a uint64_t; both pointers are to one.
    let rc = unsafe {
        mallctl(c"epoch".as_ptr(), ptr::addr_of_mut!(epoch).cast(), &mut len, ptr::addr_of_mut!(epoch).cast(), len)
    };
    if rc != 0 {
        return Err(format!("mallctl(\"epoch\") failed with {rc}"));
    }
    let size = |name: &CStr| read_mallctl::<usize>(mallctl, name).map(|v| v as u64);
    let version = read_mallctl::<*const c_char>(mallctl, c"version").map(c_text)?;
    Ok(JemallocStats {
        source: JemallocSource::Preloaded,
        version,
        allocated: size(c"stats.allocated")?,
        active: size(c"stats.active")?,
        resident: size(c"stats.resident")?,
        mapped: size(c"stats.mapped")?,
        retained: size(c"stats.retained")?,
        narenas: u64::from(read_mallctl::<u32>(mallctl, c"arenas.narenas")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_s_jemalloc_counters_are_none_under_glibc() {
        assert_eq!(detect().name, Kind::Glibc);
        assert_eq!(jemalloc_thread_bytes(), None);
    }

    #[test]
    fn a_plain_test_binary_runs_on_glibc() {
        let allocator = detect();
        assert_eq!(allocator.name, Kind::Glibc);
        assert!(allocator.version.starts_with("2."), "{allocator}");
        assert!(preloaded_jemalloc_stats().is_none());
    }
}
