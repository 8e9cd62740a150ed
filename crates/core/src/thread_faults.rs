//! Minor page faults per thread: how many pages a thread touched for the first time.
//! An arena's high-water mark rises when a thread allocates past what the arena already
//! holds, and that thread then touches the new pages; so among calls that overlap on one
//! arena, the faults each thread made tell which of them raised it.

use std::fs;
use std::io;

use crate::procfs;

/// The calling thread's count, from getrusage: no file to open on every call.
pub fn own() -> io::Result<u64> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD reads the calling thread.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    u64::try_from(usage.ru_minflt).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative ru_minflt"))
}

/// Another thread of this process, by its kernel thread id; None once it has ended.
pub fn of(tid: u32) -> io::Result<Option<u64>> {
    match fs::read_to_string(format!("/proc/self/task/{tid}/stat")) {
        Ok(stat) => parse_stat(&stat)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no minflt in {stat:?}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// minflt, the stat file's 10th field.
fn parse_stat(stat: &str) -> Option<u64> {
    procfs::stat_field(stat, 10)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> u32 {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        u32::try_from(tid).expect("a thread id is positive")
    }

    /// Touches `pages` pages of a fresh mapping: each is a first touch, so a fault. (A
    /// Vec may reuse resident memory another test freed.)
    fn touch_fresh_pages(pages: usize) {
        let len = pages * 4096;
        // SAFETY: a new private anonymous mapping, unmapped below; no other code sees it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        for page in 0..pages {
            // SAFETY: inside the mapping just made, writable.
            unsafe { std::ptr::write_volatile(map.cast::<u8>().add(page * 4096), 1) };
        }
        // SAFETY: the mapping made above, of this length.
        unsafe { libc::munmap(map, len) };
    }

    #[test]
    fn a_thread_reads_the_same_count_both_ways_and_touching_pages_raises_it() {
        let before = own().expect("getrusage");
        let by_proc = of(tid()).expect("own stat").expect("this thread lives");
        assert!(by_proc >= before, "procfs {by_proc} against getrusage {before}");
        let pages = 2048;
        touch_fresh_pages(pages);
        let after = own().expect("getrusage");
        assert!(after - before >= pages as u64 / 2, "{} faults for {pages} new pages", after - before);
        assert!(of(tid()).expect("own stat").expect("alive") >= after);
    }

    #[test]
    fn another_thread_is_read_from_outside_and_an_ended_one_is_none() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let (stop, wait) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            touch_fresh_pages(1024);
            sender.send((tid(), own().expect("getrusage"))).expect("send");
            wait.recv().ok();
        });
        let (worker_tid, own_count) = receiver.recv().expect("the worker's count");
        let seen = of(worker_tid).expect("its stat").expect("it lives");
        assert!(seen >= own_count && own_count >= 512, "outside {seen}, inside {own_count}");
        stop.send(()).expect("stop");
        worker.join().expect("join");
        // join returns once the thread's id is cleared; the kernel drops its /proc entry
        // a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while of(worker_tid).expect("no error for an ended thread").is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(of(worker_tid).expect("no error for an ended thread"), None);
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_move_the_fields() {
        let stat = "4242 (puma srv tp (1)) S 1 4242 4242 0 -1 4194624 777 0 0 0 12 3 0 0 20 0 30 0";
        assert_eq!(parse_stat(stat), Some(777));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }
}
