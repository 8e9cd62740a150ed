//! Readings from glibc's own malloc: `mallinfo2`, `malloc_info`, `malloc_stats` and
//! `malloc_trim`. Only meaningful while glibc is the live allocator (see `allocator`).

use std::ffi::c_char;
use std::io;
use std::ptr;
use std::sync::Mutex;

extern "C" {
    // Not in the libc crate: glibc prints these statistics to the C `stderr` stream.
    fn malloc_stats();
    // glibc's `FILE *stderr`; swapped briefly so malloc_stats writes into memory.
    static mut stderr: *mut libc::FILE;
}

/// Every field of glibc's `struct mallinfo2` (sizes in bytes, summed over all arenas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mallinfo {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
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

/// The XML that `malloc_info(0, …)` writes, captured in memory with `open_memstream`.
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

/// Runs `write` against a fresh memory stream and returns what it wrote.
fn capture_stream(write: impl FnOnce(*mut libc::FILE) -> bool) -> io::Result<String> {
    let mut buf: *mut c_char = ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: buf and len outlive the stream; glibc updates them on flush and close.
    let stream = unsafe { libc::open_memstream(&mut buf, &mut len) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    let wrote = write(stream);
    // SAFETY: stream came from open_memstream and is closed exactly once.
    let closed = unsafe { libc::fclose(stream) } == 0;
    let text = if buf.is_null() {
        String::new()
    } else {
        // SAFETY: after fclose, buf points to len bytes that the stream wrote.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    // SAFETY: the buffer was allocated by open_memstream with malloc and is ours to free.
    unsafe { libc::free(buf.cast()) };
    if !wrote || !closed {
        return Err(io::Error::new(io::ErrorKind::Other, "glibc failed to write its report"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uordblks_grows_by_a_live_allocation() {
        // Small blocks stay in the arena (uordblks); big ones would be mmapped (hblkhd).
        // 64 MiB dwarfs what the other tests running beside this one free meanwhile.
        let before = mallinfo().uordblks;
        let blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![1; 16 << 10]).collect();
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
    fn malloc_stats_is_captured_without_fd_2() {
        let text = malloc_stats_text().expect("malloc_stats");
        assert!(text.contains("Arena 0:"), "{text}");
        assert!(text.contains("Total (incl. mmap):"));
    }
}
