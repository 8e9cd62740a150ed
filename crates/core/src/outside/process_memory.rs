//! Another process's memory, read through /proc/PID/mem: the kernel copies from the
//! target's pages without stopping it, and an address the target has not mapped fails
//! with EIO instead of crashing either side. The file, not process_vm_readv(2): Docker's
//! default seccomp profile refuses that call without CAP_SYS_PTRACE, while the file opens
//! for the same user under the same rules as ptrace, in a container too.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

#[derive(Debug)]
pub struct ProcessMemory {
    file: File,
}

impl ProcessMemory {
    /// Opens the target's memory; EACCES or EPERM when the caller may not read it.
    pub fn of(pid: u32) -> io::Result<Self> {
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid} is out of range")))?;
        Ok(ProcessMemory { file: File::open(format!("/proc/{pid}/mem"))? })
    }

    /// Fills `buffer` from the target's `address`; a short read is an error, and a read
    /// from a process whose memory is gone (it exited) reads nothing.
    pub fn read(&self, address: u64, buffer: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buffer, address).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read fewer than {} bytes at {address:#x}: the process's memory is gone", buffer.len()),
            ),
            _ => error,
        })
    }

    /// One 64-bit word.
    pub fn word(&self, address: u64) -> io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Ok(u64::from_ne_bytes(bytes))
    }
}

/// Whether a read failed because the address is not mapped in the target (now).
pub fn unmapped(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EIO)
}

/// The 64-bit word at `offset` of a block read at once; None past its end.
pub fn word_in(block: &[u8], offset: u64) -> Option<u64> {
    let start = usize::try_from(offset).ok()?;
    let bytes = block.get(start..start.checked_add(8)?)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_like_another_and_an_unmapped_address_is_an_error() {
        let value: u64 = 0x1234_5678_9abc_def0;
        let memory = ProcessMemory::of(std::process::id()).expect("own pid");
        assert_eq!(memory.word(&value as *const u64 as u64).expect("a mapped word"), value);
        let error = memory.word(8).expect_err("page zero is never mapped");
        assert!(unmapped(&error), "{error:?}");
        assert!(ProcessMemory::of(u32::MAX).is_err());
    }

    #[test]
    fn a_block_across_the_end_of_a_mapping_is_an_error_not_a_short_read() {
        let page = crate::procfs::page_size() as usize;
        // SAFETY: a fresh private anonymous mapping of two pages, asked of the kernel.
        let pages = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(pages, libc::MAP_FAILED);
        let start = pages as u64;
        // SAFETY: the second page of the mapping made above, which nothing else uses.
        assert_eq!(unsafe { libc::munmap(pages.cast::<u8>().add(page).cast(), page) }, 0);
        let memory = ProcessMemory::of(std::process::id()).expect("own pid");
        let mut buffer = vec![0u8; 2 * page];
        let error = memory.read(start, &mut buffer).expect_err("the second page is unmapped");
        assert!(unmapped(&error), "{error:?}");
        assert!(memory.read(start, &mut buffer[..page]).is_ok());
        // SAFETY: the first page, still mapped by this test alone.
        assert_eq!(unsafe { libc::munmap(pages, page) }, 0);
    }

    #[test]
    fn words_in_a_block_stop_at_its_end() {
        let block: Vec<u8> = (0u8..16).collect();
        assert_eq!(word_in(&block, 8), Some(u64::from_ne_bytes([8, 9, 10, 11, 12, 13, 14, 15])));
        assert_eq!(word_in(&block, 9), None);
        assert_eq!(word_in(&block, u64::MAX), None);
    }
}
