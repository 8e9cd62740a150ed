//! Readings from glibc's own malloc: `mallinfo2`, `malloc_info`, `malloc_stats` and
//! `malloc_trim`. Only meaningful while glibc is the live allocator (see `allocator`).

use std::io;
use std::ops::RangeInclusive;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::reading;
use crate::schema::Unit::{Bytes, Count, Flag, Seconds};

extern "C" {
    // Not in the libc crate: glibc prints these statistics to the C `stderr` stream.
    fn malloc_stats();
    // glibc's `FILE *stderr`; swapped briefly so malloc_stats writes into memory.
    static mut stderr: *mut libc::FILE;
}

reading! {
    /// Every field of glibc's `struct mallinfo2` (sizes in bytes, summed over all arenas).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Mallinfo as "Mallinfo" {
        arena: usize => Bytes,
        ordblks: usize => Count,
        smblks: usize => Count,
        hblks: usize => Count,
        hblkhd: usize => Bytes,
        usmblks: usize => Bytes,
        fsmblks: usize => Bytes,
        uordblks: usize => Bytes,
        fordblks: usize => Bytes,
        keepcost: usize => Bytes,
    }
}

reading! {
    /// What one `malloc_trim` did: whether glibc says it released anything, and RSS around it.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct TrimResult as "TrimResult" {
        released: bool => Flag,
        rss_before: u64 => Bytes,
        rss_after: u64 => Bytes,
        elapsed: f64 => Seconds,
    }
}

pub fn mallinfo() -> Mallinfo {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let m = unsafe { libc::mallinfo2() };
    Mallinfo {
        arena: m.arena,
        ordblks: m.ordblks,
        smblks: m.smblks,
        hblks: m.hblks,
        hblkhd: m.hblkhd,
        usmblks: m.usmblks,
        fsmblks: m.fsmblks,
        uordblks: m.uordblks,
        fordblks: m.fordblks,
        keepcost: m.keepcost,
    }
}

/// The XML that `malloc_info(0, …)` writes, captured in memory (no file, no descriptor).
pub fn malloc_info_xml() -> io::Result<String> {
    capture_stream(|stream| {
        // SAFETY: stream is a valid, open FILE*; options must be 0.
        unsafe { libc::malloc_info(0, stream) == 0 }
    })
}

/// The text that `malloc_stats()` prints. It writes to the C `stderr` stream only, so
/// that stream pointer is pointed at a memory stream for the call; file descriptor 2 is
/// never touched, and Ruby's `$stderr` (which writes to the descriptor) is unaffected.
pub fn malloc_stats_text() -> io::Result<String> {
    // Serialises our own swaps: two at once would restore the wrong pointer.
    static STDERR_SWAP: Mutex<()> = Mutex::new(());
    let _swap = STDERR_SWAP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    capture_stream(|stream| {
        // SAFETY: the global is only replaced while STDERR_SWAP is held, and restored
        // before returning; malloc_stats reads it during the call only.
        unsafe {
            let saved = ptr::replace(ptr::addr_of_mut!(stderr), stream);
            malloc_stats();
            ptr::write(ptr::addr_of_mut!(stderr), saved);
        }
        true
    })
}

/// `malloc_trim(pad)`: true when glibc returned some memory to the system.
pub fn trim(pad: usize) -> bool {
    // SAFETY: malloc_trim takes a plain size and only touches allocator state.
    unsafe { libc::malloc_trim(pad) == 1 }
}

/// A malloc parameter a running process may change through `mallopt`, as the Puma
/// trial does in one worker: from then on it governs what glibc does next (arenas made,
/// blocks mmapped, tops trimmed); what exists stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MallocParameter {
    /// M_ARENA_MAX: the most arenas glibc will make.
    ArenaMax,
    /// M_MMAP_THRESHOLD: blocks this large or larger are mmapped (and fixes the
    /// threshold, which glibc otherwise raises as large blocks are freed).
    MmapThreshold,
    /// M_TRIM_THRESHOLD: free memory at the top of the main arena beyond this goes back.
    TrimThreshold,
}

impl MallocParameter {
    pub const ALL: [MallocParameter; 3] =
        [MallocParameter::ArenaMax, MallocParameter::MmapThreshold, MallocParameter::TrimThreshold];

    pub fn name(self) -> &'static str {
        match self {
            MallocParameter::ArenaMax => "arena_max",
            MallocParameter::MmapThreshold => "mmap_threshold",
            MallocParameter::TrimThreshold => "trim_threshold",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|parameter| parameter.name() == name)
    }

    /// What glibc accepts: mallopt takes an int; the mmap threshold is at most
    /// HEAP_MAX_SIZE / 2 (32 MiB on 64-bit), and glibc ignores a larger one.
    pub fn range(self) -> RangeInclusive<u64> {
        match self {
            MallocParameter::ArenaMax => 1..=1024,
            MallocParameter::MmapThreshold => 0..=32 << 20,
            MallocParameter::TrimThreshold => 0..=i32::MAX as u64,
        }
    }

    fn code(self) -> libc::c_int {
        match self {
            MallocParameter::ArenaMax => libc::M_ARENA_MAX,
            MallocParameter::MmapThreshold => libc::M_MMAP_THRESHOLD,
            MallocParameter::TrimThreshold => libc::M_TRIM_THRESHOLD,
        }
    }
}

/// `mallopt(parameter, value)`, with the value checked against the parameter's range
/// first: Err names the allowed range, or says glibc refused it.
pub fn set_parameter(parameter: MallocParameter, value: u64) -> Result<(), String> {
    let range = parameter.range();
    let int = libc::c_int::try_from(value).ok().filter(|_| range.contains(&value)).ok_or_else(|| {
        format!("{} must be from {} to {}, got {value}", parameter.name(), range.start(), range.end())
    })?;
    // SAFETY: mallopt takes two plain ints and only changes allocator settings.
    if unsafe { libc::mallopt(parameter.code(), int) } == 1 {
        Ok(())
    } else {
        Err(format!("glibc refused {}={value}", parameter.name()))
    }
}

/// Room for a first capture; a process with 16 fragmented arenas prints about 64 KB.
const FIRST_CAPTURE_BYTES: usize = 64 << 10;
/// A report larger than this is refused rather than held: 8 × cores arenas print far less.
const MAX_CAPTURE_BYTES: usize = 64 << 20;
/// The stream's stdio buffer: what it gathers between copies into the capture buffer.
const STDIO_BUFFER_BYTES: usize = 8 << 10;
/// What the last report needed, so that the next buffer fits it the first time.
static LAST_CAPTURE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Runs `write` against a memory stream and returns what it wrote. The stream writes into
/// a buffer sized up front (fmemopen) rather than one grown as it fills (open_memstream):
/// growing it costs about a third of a malloc_info capture. A report that does not fit is
/// written again into a buffer twice the size.
///
/// Writing must never call malloc: malloc_stats prints while it holds each arena's lock,
/// and a malloc from the caller's own arena (the main arena, on Ruby's main thread) would
/// then wait on that lock forever. So the stream gets its stdio buffer from us, and a
/// full stream fails its writes instead of growing.
fn capture_stream(mut write: impl FnMut(*mut libc::FILE) -> bool) -> io::Result<String> {
    let mut capacity = (2 * LAST_CAPTURE_BYTES.load(Ordering::Relaxed)).clamp(FIRST_CAPTURE_BYTES, MAX_CAPTURE_BYTES);
    let mut stdio_buffer = vec![0u8; STDIO_BUFFER_BYTES];
    loop {
        let mut buf: Vec<u8> = Vec::with_capacity(capacity);
        // SAFETY: the stream writes at most `capacity` bytes into buf's spare capacity,
        // and is closed below while buf is still alive.
        let stream = unsafe { libc::fmemopen(buf.as_mut_ptr().cast(), capacity, c"w".as_ptr()) };
        if stream.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: stream is open and unused; stdio_buffer outlives it (closed below).
        let buffered =
            unsafe { libc::setvbuf(stream, stdio_buffer.as_mut_ptr().cast(), libc::_IOFBF, STDIO_BUFFER_BYTES) == 0 };
        let wrote = buffered && write(stream);
        // SAFETY: stream is open; fflush and ferror report whether every write fit.
        let fitted = unsafe { libc::fflush(stream) == 0 && libc::ferror(stream) == 0 };
        // SAFETY: stream is open; its position is the number of bytes written.
        let written = unsafe { libc::ftell(stream) };
        // SAFETY: stream came from fmemopen and is closed exactly once.
        let closed = unsafe { libc::fclose(stream) } == 0;
        // fmemopen keeps the last byte for its terminating NUL: a full buffer overflowed.
        let len = usize::try_from(written).ok().filter(|&len| fitted && len < capacity);
        match len {
            Some(len) if wrote && closed => {
                // SAFETY: the stream initialised the first `len` bytes of buf.
                unsafe { buf.set_len(len) };
                LAST_CAPTURE_BYTES.store(len, Ordering::Relaxed);
                return Ok(
                    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                );
            }
            Some(_) => return Err(io::Error::other("glibc failed to write its report")),
            None if capacity < MAX_CAPTURE_BYTES => capacity = (2 * capacity).min(MAX_CAPTURE_BYTES),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("glibc's report did not fit in {MAX_CAPTURE_BYTES} bytes"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused before mallopt is called (the tests share one process: a parameter set
    /// here would change the others' allocations; test/trial_test.rb sees each act).
    #[test]
    fn a_parameter_out_of_its_range_is_refused_naming_the_range() {
        let refused = |parameter, value| set_parameter(parameter, value).expect_err("out of range");
        assert_eq!(refused(MallocParameter::ArenaMax, 0), "arena_max must be from 1 to 1024, got 0");
        assert_eq!(
            refused(MallocParameter::MmapThreshold, 64 << 20),
            "mmap_threshold must be from 0 to 33554432, got 67108864"
        );
        assert_eq!(
            refused(MallocParameter::TrimThreshold, 1 << 31),
            "trim_threshold must be from 0 to 2147483647, got 2147483648"
        );
        assert_eq!(MallocParameter::named("arena_max"), Some(MallocParameter::ArenaMax));
        assert_eq!(MallocParameter::named("top_pad"), None);
    }

    #[test]
    fn uordblks_grows_by_a_live_allocation() {
        // Small blocks stay in the arena (uordblks); big ones would be mmapped (hblkhd).
        // 128 MiB held, half of it asked for: the other tests running beside this one free
        // up to 32 MiB each meanwhile.
        let before = mallinfo().uordblks;
        let blocks: Vec<Vec<u8>> = (0..8192).map(|_| vec![1; 16 << 10]).collect();
        let during = mallinfo().uordblks;
        assert!(during >= before + (64 << 20), "before {before}, during {during}");
        drop(blocks);
    }

    #[test]
    fn malloc_info_is_captured_as_xml() {
        let xml = malloc_info_xml().expect("malloc_info");
        assert!(xml.starts_with("<malloc version=\"1\">"), "{xml}");
        assert!(xml.trim_end().ends_with("</malloc>"));
    }

    #[test]
    fn a_report_larger_than_the_first_buffer_is_captured_whole() {
        let line = c"<size from=\"1\" to=\"2\" total=\"3\" count=\"4\"/>\n";
        let lines = 3 * FIRST_CAPTURE_BYTES / line.count_bytes();
        let mut calls = 0;
        let text = capture_stream(|stream| {
            calls += 1;
            // SAFETY: line is NUL-terminated and stream is open.
            (0..lines).all(|_| unsafe { libc::fputs(line.as_ptr(), stream) } >= 0)
        })
        .expect("capture");
        assert_eq!(text.len(), lines * line.count_bytes());
        assert!(text.lines().all(|l| l == "<size from=\"1\" to=\"2\" total=\"3\" count=\"4\"/>"));
        assert!(calls >= 2, "the first buffer was too small, so it was written again");
    }

    #[test]
    fn malloc_stats_is_captured_without_fd_2() {
        let text = malloc_stats_text().expect("malloc_stats");
        assert!(text.contains("Arena 0:"), "{text}");
        assert!(text.contains("Total (incl. mmap):"));
    }
}
