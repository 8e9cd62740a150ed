//! What the C library file a process maps tells without running it: glibc's version
//! (from its banner, "… release version 2.36.") and the build it is (the GNU build-id
//! note), read through /proc/PID/root so that a process in a container is read with its
//! own libc, not ours.

use std::fs;
use std::io;
use std::path::PathBuf;

const BANNER: &[u8] = b"release version ";
const NT_GNU_BUILD_ID: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_LOAD: u32 = 1;
const SHT_SYMTAB: u32 = 2;
/// sizeof(Elf64_Sym)
const SYMBOL_SIZE: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibcFile {
    /// As the banner gives it: "2.36".
    pub version: String,
    pub build_id: Option<Vec<u8>>,
}

/// Whether a mapped file is the C library: "libc.so.6", or "libc-2.31.so" on older systems.
pub fn is_libc(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libc.so") || (name.starts_with("libc-") && name.ends_with(".so"))
}

pub fn read(pid: u32, path: &str) -> io::Result<LibcFile> {
    let file = fs::read(PathBuf::from(format!("/proc/{pid}/root{path}")))?;
    let version = banner_version(&file)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path} holds no glibc version banner")))?;
    Ok(LibcFile { version, build_id: build_id(&file) })
}

/// "2.36" from "GNU C Library (…) stable release version 2.36."
fn banner_version(file: &[u8]) -> Option<String> {
    let at = file.windows(BANNER.len()).position(|window| window == BANNER)? + BANNER.len();
    let digits: Vec<u8> =
        file[at..].iter().take(16).copied().take_while(|b| b.is_ascii_digit() || *b == b'.').collect();
    let version = String::from_utf8(digits).ok()?;
    let version = version.trim_end_matches('.');
    version.contains('.').then(|| version.to_owned())
}

/// A 64-bit little-endian ELF file's headers, read with every offset checked.
struct Elf<'a>(&'a [u8]);

impl<'a> Elf<'a> {
    fn of(file: &'a [u8]) -> Option<Self> {
        // ELFCLASS64, ELFDATA2LSB
        (file.get(..6)? == b"\x7fELF\x02\x01").then_some(Elf(file))
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.0.get(at..at.checked_add(2)?)?.try_into().ok()?))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at.checked_add(4)?)?.try_into().ok()?))
    }

    fn u64_at(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.get(at..at.checked_add(8)?)?.try_into().ok()?))
    }

    fn usize_at(&self, at: usize) -> Option<usize> {
        usize::try_from(self.u64_at(at)?).ok()
    }

    fn bytes(&self, offset: usize, size: usize) -> Option<&'a [u8]> {
        self.0.get(offset..offset.checked_add(size)?)
    }

    /// Where each entry of a header table starts: (table offset field, entry size field, count field).
    fn table(&self, fields: (usize, usize, usize)) -> Vec<usize> {
        let (Some(table), Some(size), Some(count)) =
            (self.usize_at(fields.0), self.u16_at(fields.1), self.u16_at(fields.2))
        else {
            return Vec::new();
        };
        (0..usize::from(count)).map_while(|index| table.checked_add(index.checked_mul(usize::from(size))?)).collect()
    }

    fn program_headers(&self) -> Vec<usize> {
        self.table((0x20, 0x36, 0x38))
    }

    fn section_headers(&self) -> Vec<usize> {
        self.table((0x28, 0x3a, 0x3c))
    }

    /// The lowest PT_LOAD's address: what the first mapping of the file is loaded at, less the base.
    fn first_load_address(&self) -> Option<u64> {
        self.program_headers()
            .into_iter()
            .filter(|&h| self.u32_at(h) == Some(PT_LOAD))
            .find_map(|h| self.u64_at(h + 0x10))
    }

    /// A symbol's address in the file's .symtab (which stripped libraries lack and debug files keep).
    fn symbol(&self, name: &str) -> Option<u64> {
        let sections = self.section_headers();
        let symtab = sections.iter().copied().find(|&h| self.u32_at(h + 4) == Some(SHT_SYMTAB))?;
        let strtab = *sections.get(usize::try_from(self.u32_at(symtab + 0x28)?).ok()?)?;
        let strings = self.bytes(self.usize_at(strtab + 0x18)?, self.usize_at(strtab + 0x20)?)?;
        let (offset, size) = (self.usize_at(symtab + 0x18)?, self.usize_at(symtab + 0x20)?);
        (0..size / SYMBOL_SIZE).find_map(|index| {
            let symbol = offset.checked_add(index * SYMBOL_SIZE)?;
            let at = usize::try_from(self.u32_at(symbol)?).ok()?;
            let named = strings.get(at..)?.split(|&b| b == 0).next()? == name.as_bytes();
            named.then(|| self.u64_at(symbol + 8)).flatten()
        })
    }
}

/// The NT_GNU_BUILD_ID note of a 64-bit little-endian ELF file, from its PT_NOTE segments.
fn build_id(file: &[u8]) -> Option<Vec<u8>> {
    let elf = Elf::of(file)?;
    elf.program_headers().into_iter().find_map(|header| {
        if elf.u32_at(header)? != PT_NOTE {
            return None;
        }
        gnu_build_id_in(elf.bytes(elf.usize_at(header + 0x08)?, elf.usize_at(header + 0x20)?)?)
    })
}

/// Where libc6-dbg (or any package of detached debug files) puts the symbols of a build.
pub fn debug_file_path(build_id: &[u8]) -> Option<String> {
    let (first, rest) = build_id.split_first()?;
    let rest: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("/usr/lib/debug/.build-id/{first:02x}/{rest}.debug"))
}

/// A symbol's offset from the start of the library's first mapping, from the detached
/// debug file of its build: in the process's own root first (a container's libc6-dbg),
/// then in ours. None where neither has the file or the symbol.
pub fn debug_symbol_offset(pid: u32, build_id: &[u8], name: &str) -> Option<u64> {
    let path = debug_file_path(build_id)?;
    [format!("/proc/{pid}/root{path}"), path].iter().find_map(|candidate| {
        let file = fs::read(candidate).ok()?;
        let elf = Elf::of(&file)?;
        elf.symbol(name)?.checked_sub(elf.first_load_address()? & !0xfff)
    })
}

/// Walks the notes of one segment: namesz, descsz, type, then name and desc, each padded to 4.
fn gnu_build_id_in(notes: &[u8]) -> Option<Vec<u8>> {
    let padded = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= notes.len() {
        let field = |k: usize| u32::from_le_bytes(notes[at + 4 * k..at + 4 * k + 4].try_into().unwrap_or([0; 4]));
        let (name_size, desc_size, kind) = (field(0) as usize, field(1) as usize, field(2));
        let name_at = at + 12;
        let desc_at = name_at.checked_add(padded(name_size)?)?;
        let end = desc_at.checked_add(padded(desc_size)?)?;
        if kind == NT_GNU_BUILD_ID && notes.get(name_at..name_at + name_size)? == b"GNU\0" {
            return Some(notes.get(desc_at..desc_at + desc_size)?.to_vec());
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_banners() {
        assert!(is_libc("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(is_libc("/lib/x86_64-linux-gnu/libc-2.31.so"));
        assert!(!is_libc("/usr/lib/x86_64-linux-gnu/libcrypt.so.1"));
        assert!(!is_libc("/usr/lib/libc-client.so.2007e"));
        let banner = b"\0GNU C Library (Debian GLIBC 2.36-9+deb12u13) stable release version 2.36.\nCopyright";
        assert_eq!(banner_version(banner).as_deref(), Some("2.36"));
        assert_eq!(banner_version(b"release version x"), None);
    }

    #[test]
    fn our_own_libc_gives_the_version_glibc_reports_and_a_build_id() {
        let maps = fs::read_to_string("/proc/self/maps").expect("maps");
        let path = maps.lines().filter_map(|line| line.split_ascii_whitespace().nth(5)).find(|p| is_libc(p));
        let libc = read(std::process::id(), path.expect("a mapped libc")).expect("libc file");
        assert_eq!(libc.version, crate::allocator::detect().version);
        // NT_GNU_BUILD_ID is a SHA-1 on Debian's builds: 20 bytes.
        assert_eq!(libc.build_id.map(|id| id.len()), Some(20));
        assert!(build_id(b"not an elf file").is_none());
    }
}
