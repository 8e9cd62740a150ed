//! The container this process runs in, as its cgroup tells: the memory limit and usage
//! (what an OOM kill is decided on), the CPU quota and cpuset, and glibc's arena cap,
//! which glibc sizes from the host's online CPUs whatever the container allows.
//!
//! cgroup v2 keeps every controller in one directory (`memory.max`, `memory.current`,
//! `memory.stat`, `cpu.max`, `cpuset.cpus.effective`); v1 gives each controller its own
//! hierarchy (`memory/memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.stat`,
//! `cpu/cpu.cfs_quota_us` and `cpu.cfs_period_us`, `cpuset/cpuset.cpus`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::reading;
use crate::schema::Unit::{Bytes, Count, Cpus};

/// A v1 limit at or above this is "no limit" (the kernel's PAGE_COUNTER_MAX in bytes).
const V1_UNLIMITED: u64 = 1 << 62;

reading! {
    /// nil where there is no limit, or nothing to read (no cgroup, another allocator).
    #[derive(Debug, Clone, PartialEq)]
    pub struct Cgroup as "Cgroup" {
        version: Option<u64> => Count,
        memory_limit: Option<u64> => Bytes,
        memory_usage: Option<u64> => Bytes,
        anon: Option<u64> => Bytes,
        file: Option<u64> => Bytes,
        cpu_quota: Option<f64> => Cpus,
        cpuset_cpus: Option<u64> => Count,
        online_cpus: u64 => Count,
        arena_cap: Option<u64> => Count,
    }
}

/// This process's cgroup, from /proc/self/cgroup and /sys/fs/cgroup. What it cannot read
/// is left unknown.
pub fn read(glibc: bool) -> Cgroup {
    read_checked(glibc).0
}

/// The same, and the files that were there but held what no kernel writes (a moment
/// fails on those: a figure read from them would be made up).
pub fn read_checked(glibc: bool) -> (Cgroup, Vec<String>) {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let online = online_cpus();
    let env = |name: &str| std::env::var(name).ok();
    let cap = glibc.then(|| arena_cap(env("MALLOC_ARENA_MAX"), env("GLIBC_TUNABLES"), online));
    read_tree(Path::new("/sys/fs/cgroup"), &own, online, cap)
}

/// From a tree laid out like /sys/fs/cgroup (the tests' fixtures).
pub fn read_from(root: &Path, own: &str, online_cpus: u64, arena_cap: Option<u64>) -> Cgroup {
    read_tree(root, own, online_cpus, arena_cap).0
}

/// Reads a cgroup's files: one that is absent is unknown (a root cgroup has no limit
/// file, a controller may not be enabled); one that is there but does not parse is
/// malformed, and listed.
#[derive(Default)]
struct Files {
    malformed: Vec<String>,
}

impl Files {
    fn text(&mut self, path: &Path) -> Option<String> {
        match fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.malformed.push(format!("{}: {e}", path.display()));
                None
            }
        }
    }

    /// `parse` of the file's text; None where it says there is none (`none`), or it is
    /// absent or malformed.
    fn parsed<T>(&mut self, path: &Path, none: &[&str], parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let text = self.text(path)?;
        let value = parse(&text);
        if value.is_none() && !none.contains(&text.trim()) {
            let excerpt: String = text.trim().chars().take(40).collect();
            self.malformed.push(format!("{}: {excerpt:?}", path.display()));
        }
        value
    }

    fn number(&mut self, path: &Path, none: &[&str]) -> Option<u64> {
        self.parsed(path, none, |text| text.trim().parse().ok())
    }

    /// A key of memory.stat: absent is unknown, there but not a number is malformed.
    fn stat_field(&mut self, path: &Path, stat: &str, key: &str) -> Option<u64> {
        let line = stat.lines().find(|line| line.split_whitespace().next() == Some(key))?;
        let value = line[key.len()..].trim().parse().ok();
        if value.is_none() {
            self.malformed.push(format!("{}: {line:?}", path.display()));
        }
        value
    }
}

fn read_tree(root: &Path, own: &str, online_cpus: u64, arena_cap: Option<u64>) -> (Cgroup, Vec<String>) {
    let mut files = Files::default();
    let mut cgroup = Cgroup {
        version: None,
        memory_limit: None,
        memory_usage: None,
        anon: None,
        file: None,
        cpu_quota: None,
        cpuset_cpus: None,
        online_cpus,
        arena_cap,
    };
    // A hybrid host lists both: the v1 memory controller, where there is one, is the one
    // that limits.
    let v1_memory = own.lines().any(|line| line.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "memory")));
    if let Some(path) = own.lines().find_map(|line| line.strip_prefix("0::")).filter(|_| !v1_memory) {
        let dir = directory(root, path, "memory.current");
        cgroup.version = Some(2);
        cgroup.memory_limit = files.number(&dir.join("memory.max"), &["max"]);
        cgroup.memory_usage = files.number(&dir.join("memory.current"), &[]);
        let stat_path = dir.join("memory.stat");
        let stat = files.text(&stat_path).unwrap_or_default();
        cgroup.anon = files.stat_field(&stat_path, &stat, "anon");
        cgroup.file = files.stat_field(&stat_path, &stat, "file");
        cgroup.cpu_quota = files.parsed(&dir.join("cpu.max"), &[], v2_quota).flatten();
        cgroup.cpuset_cpus = files.parsed(&dir.join("cpuset.cpus.effective"), &[""], cpu_count);
        return (cgroup, files.malformed);
    }
    let controller = |name: &str| {
        let path = own.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == name).then_some(path)
        })?;
        Some(directory(&root.join(controller_dir(root, name)), path, ""))
    };
    if let Some(memory) = controller("memory") {
        cgroup.version = Some(1);
        cgroup.memory_limit =
            files.number(&memory.join("memory.limit_in_bytes"), &[]).filter(|&limit| limit < V1_UNLIMITED);
        cgroup.memory_usage = files.number(&memory.join("memory.usage_in_bytes"), &[]);
        let stat_path = memory.join("memory.stat");
        let stat = files.text(&stat_path).unwrap_or_default();
        let field = |files: &mut Files, total: &str, own: &str| {
            files.stat_field(&stat_path, &stat, total).or_else(|| files.stat_field(&stat_path, &stat, own))
        };
        cgroup.anon = field(&mut files, "total_rss", "rss");
        cgroup.file = field(&mut files, "total_cache", "cache");
    }
    if let Some(cpu) = controller("cpu") {
        let period = files.parsed(&cpu.join("cpu.cfs_period_us"), &[], |text| text.trim().parse::<i64>().ok());
        let quota = files.parsed(&cpu.join("cpu.cfs_quota_us"), &[], |text| text.trim().parse::<i64>().ok());
        cgroup.cpu_quota = v1_quota(quota, period);
    }
    if let Some(cpuset) = controller("cpuset") {
        cgroup.cpuset_cpus = files.parsed(&cpuset.join("cpuset.cpus"), &[""], cpu_count);
    }
    (cgroup, files.malformed)
}

/// Where v1 mounts a controller: its own name, or a joint mount such as "cpu,cpuacct".
fn controller_dir(root: &Path, name: &str) -> PathBuf {
    let joint = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name())
        .find(|dir| dir.to_str().is_some_and(|dir| dir.split(',').any(|c| c == name) && root.join(dir).is_dir()));
    joint.map_or_else(|| PathBuf::from(name), PathBuf::from)
}

/// The cgroup's directory: its path under the mount, or the mount itself where the
/// container sees its own cgroup at the root (Docker without a cgroup namespace on v1
/// shows the host's path in /proc/self/cgroup but mounts the container's cgroup there).
fn directory(mount: &Path, path: &str, probe: &str) -> PathBuf {
    let nested = mount.join(path.trim_start_matches('/'));
    let marker = if probe.is_empty() { "memory.limit_in_bytes" } else { probe };
    let found = |dir: &Path| dir.is_dir() && (dir.join(marker).exists() || dir.join("cgroup.procs").exists());
    if found(&nested) {
        nested
    } else {
        mount.to_path_buf()
    }
}

/// cpu.max: "max 100000" (no quota: Some(None)) or "150000 100000" (1.5 CPUs); None
/// where it does not parse.
fn v2_quota(text: &str) -> Option<Option<f64>> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next()?.parse().ok()?;
    if quota == "max" {
        return Some(None);
    }
    let quota: f64 = quota.parse().ok()?;
    Some((period > 0.0).then(|| quota / period))
}

/// cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us.
fn v1_quota(quota: Option<i64>, period: Option<i64>) -> Option<f64> {
    let (quota, period) = (quota?, period?);
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// "0-3,8,10-11": 7 CPUs.
fn cpu_count(text: &str) -> Option<u64> {
    let mut count = 0;
    for range in text.trim().split(',').filter(|range| !range.is_empty()) {
        count += match range.split_once('-') {
            Some((first, last)) => last.parse::<u64>().ok()?.checked_sub(first.parse().ok()?)? + 1,
            None => range.parse::<u64>().map(|_| 1).ok()?,
        };
    }
    (count > 0).then_some(count)
}

/// The CPUs glibc counts for its arena cap: the host's online ones.
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf only reads a system figure.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(online).unwrap_or(1).max(1)
}

/// glibc's arena cap: MALLOC_ARENA_MAX, else the glibc.malloc.arena_max tunable, else
/// 8 × online CPUs (64-bit). The environment is read as glibc read it at start.
pub fn arena_cap(malloc_arena_max: Option<String>, tunables: Option<String>, online_cpus: u64) -> u64 {
    let tunable = tunables
        .and_then(|t| t.split(':').find_map(|pair| pair.strip_prefix("glibc.malloc.arena_max=").map(str::to_owned)));
    let positive = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok()).filter(|&n| n > 0);
    // glibc applies the tunables after the environment variable, so the tunable wins.
    positive(tunable).or_else(|| positive(malloc_arena_max)).unwrap_or(8 * online_cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree laid out as the kernel lays out /sys/fs/cgroup.
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("bloat_probe-cgroup-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (path, text) in files {
            let file = root.join(path);
            fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
            fs::write(file, text).expect("write");
        }
        root
    }

    /// As a v2 host shows a container's cgroup (a Kubernetes pod with 512 MiB and 1.5 CPUs).
    #[test]
    fn a_v2_tree_gives_the_limit_usage_quota_and_cpuset() {
        let pod = "kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope";
        let root = tree(
            "v2pod",
            &[
                (&format!("{pod}/memory.max"), "536870912\n"),
                (&format!("{pod}/memory.current"), "123456789\n"),
                (&format!("{pod}/memory.stat"), "anon 100000000\nfile 20000000\nkernel 1000\n"),
                (&format!("{pod}/cpu.max"), "150000 100000\n"),
                (&format!("{pod}/cpuset.cpus.effective"), "0-1,4\n"),
                (&format!("{pod}/cgroup.procs"), "1\n"),
            ],
        );
        let cgroup = read_from(&root, &format!("0::/{pod}\n"), 64, Some(512));
        assert_eq!(cgroup.version, Some(2));
        assert_eq!(cgroup.memory_limit, Some(512 << 20));
        assert_eq!(cgroup.memory_usage, Some(123_456_789));
        assert_eq!((cgroup.anon, cgroup.file), (Some(100_000_000), Some(20_000_000)));
        assert_eq!(cgroup.cpu_quota, Some(1.5));
        assert_eq!(cgroup.cpuset_cpus, Some(3));
        assert_eq!((cgroup.online_cpus, cgroup.arena_cap), (64, Some(512)));
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn v2_without_limits_is_nil_and_a_namespaced_root_is_read() {
        let root = tree(
            "v2root",
            &[
                ("memory.max", "max\n"),
                ("memory.current", "4096\n"),
                ("memory.stat", "anon 1\nfile 2\n"),
                ("cpu.max", "max 100000\n"),
                ("cgroup.procs", "1\n"),
            ],
        );
        let cgroup = read_from(&root, "0::/\n", 2, None);
        assert_eq!((cgroup.memory_limit, cgroup.memory_usage, cgroup.cpu_quota), (None, Some(4096), None));
        let _ = fs::remove_dir_all(root);
    }

    /// As Docker on a v1 host without a cgroup namespace: /proc/self/cgroup names the
    /// host's path, the container's own cgroup is mounted at each controller's root.
    #[test]
    fn a_v1_container_reads_its_controllers_at_their_roots() {
        let root = tree(
            "v1docker",
            &[
                ("memory/memory.limit_in_bytes", "536870912\n"),
                ("memory/memory.usage_in_bytes", "300000000\n"),
                ("memory/memory.stat", "cache 5000\nrss 250000000\ntotal_cache 6000\ntotal_rss 260000000\n"),
                ("cpu,cpuacct/cpu.cfs_quota_us", "100000\n"),
                ("cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
                ("cpuset/cpuset.cpus", "0\n"),
            ],
        );
        let own =
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n1:name=systemd:/docker/abc\n";
        let cgroup = read_from(&root, own, 2, Some(16));
        assert_eq!(cgroup.version, Some(1));
        assert_eq!(cgroup.memory_limit, Some(512 << 20));
        assert_eq!(cgroup.memory_usage, Some(300_000_000));
        assert_eq!((cgroup.anon, cgroup.file), (Some(260_000_000), Some(6000)));
        assert_eq!((cgroup.cpu_quota, cgroup.cpuset_cpus), (Some(1.0), Some(1)));
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_hybrid_host_is_read_as_v1() {
        let root = tree("hybrid", &[("memory/memory.limit_in_bytes", "1073741824\n"), ("unified/cgroup.procs", "1\n")]);
        let cgroup = read_from(&root, "4:memory:/\n0::/\n", 2, None);
        assert_eq!((cgroup.version, cgroup.memory_limit), (Some(1), Some(1 << 30)));
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn v1_without_a_limit_is_nil() {
        let root = tree(
            "v1nolimit",
            &[("memory/memory.limit_in_bytes", "9223372036854771712\n"), ("cpu/cpu.cfs_quota_us", "-1\n")],
        );
        let cgroup = read_from(&root, "9:memory:/\n8:cpu:/\n", 2, None);
        assert_eq!((cgroup.memory_limit, cgroup.cpu_quota), (None, None));
        let _ = fs::remove_dir_all(root);
    }

    /// Files that are there but hold what no kernel writes are listed, each figure left
    /// unknown; absent ones and the kernel's words for "none" are not.
    #[test]
    fn malformed_files_are_listed_and_absent_ones_are_not() {
        let root = tree(
            "malformed",
            &[
                ("memory.max", "max\n"),
                ("memory.current", "lots\n"),
                ("memory.stat", "anon 12x\nfile 2\n"),
                ("cpu.max", "half 100000\n"),
                ("cgroup.procs", "1\n"),
            ],
        );
        let (cgroup, malformed) = read_tree(&root, "0::/\n", 2, None);
        assert_eq!((cgroup.memory_limit, cgroup.memory_usage, cgroup.anon, cgroup.file), (None, None, None, Some(2)));
        assert_eq!(malformed.len(), 3, "{malformed:?}");
        assert!(malformed[0].ends_with("memory.current: \"lots\""), "{malformed:?}");
        assert!(malformed[1].ends_with("memory.stat: \"anon 12x\""), "{malformed:?}");
        assert!(malformed[2].ends_with("cpu.max: \"half 100000\""), "{malformed:?}");
        let (_, absent) = read_tree(&root, "9:memory:/\n", 2, None);
        assert!(absent.is_empty(), "a v1 tree that is not there: {absent:?}");
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn the_arena_cap_is_the_tunable_then_the_variable_then_eight_per_cpu() {
        assert_eq!(arena_cap(None, None, 2), 16);
        assert_eq!(arena_cap(Some("2".into()), None, 64), 2);
        assert_eq!(
            arena_cap(Some("2".into()), Some("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0".into()), 2),
            4
        );
        assert_eq!(arena_cap(Some("zero".into()), None, 4), 32);
    }
}
