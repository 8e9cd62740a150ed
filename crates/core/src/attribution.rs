//! Where the memory went: for each endpoint or job, how often it ran, and how often and by
//! how much it raised memory while it ran. Under glibc that is the high-water mark of the
//! arena it ran on: an arena's resident size is the high-water mark of what its threads
//! held at once, so the names that raise the marks are the ones that set RSS. Under a
//! preloaded jemalloc it is what the call left allocated, from its thread's own counters of
//! bytes allocated and freed. Under another allocator only the calls are counted.
//!
//! Threads may share an arena (25 Puma threads, 16 arenas), so calls overlap on one. Each
//! call's start and end reads its arena's mark; a rise between two such readings is shared
//! among the calls in flight on that arena then, by the minor page faults each one's thread
//! made meanwhile: the thread that allocated past what the arena held is the one that
//! touched the new pages. A rise while no call was in flight is nobody's.
//!
//! The whole of a call's bookkeeping is one `begin` and one `end`, each a single lock: run
//! around every request, it was a dozen Ruby steps, each a cache miss after a whole request.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::allocator::{self, Allocator, Kind};
use crate::{procfs, thread_arena, thread_faults};

/// Names kept at most; the smallest is folded into OTHER when a new one comes.
pub const LIMIT: usize = 50;
pub const OTHER: &str = "other";
/// Longer names are cut here (a label, a log field).
pub const NAME_LENGTH: usize = 120;
/// Threads remembered at most; ended ones are dropped first.
pub const THREADS: usize = 1024;
/// Upper bounds of the duration buckets in seconds: Prometheus's default buckets, then +Inf.
pub const DURATION_BOUNDS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY];

/// One name's figures: calls, high-water raises and the bytes they added. (Not the RSS growth
/// while a call ran: calls in flight together each saw all of it.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub raises: u64,
    pub raised_bytes: u64,
    /// When the name first came: of two equally small names, the older is folded first.
    order: u64,
}

impl Tally {
    fn count(&mut self, raised: u64) {
        self.calls += 1;
        if raised > 0 {
            self.raises += 1;
            self.raised_bytes += raised;
        }
    }

    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.raises += other.raises;
        self.raised_bytes += other.raised_bytes;
    }
}

/// The last call a thread ran: the arena it allocated from (None off glibc), the call's name,
/// and when it ended (seconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSeen {
    pub arena: Option<u64>,
    pub name: String,
    pub seen_at: f64,
}

/// The maps' hash: one multiply-and-rotate a word, as rustc's FxHasher does. SipHash resists
/// keys chosen to collide, but these maps hold at most LIMIT names (the rest folded), and
/// thread ids and arena addresses, so a flood cannot grow a probe; and its code, cold after
/// every request, cost a microsecond a lookup.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A thread's last call as kept: when it ended by the monotonic clock (no wall-clock read on
/// every call; `threads` turns it into the time of day).
#[derive(Debug)]
struct Seen {
    arena: Option<u64>,
    name: String,
    at: Instant,
}

/// What a call is measured against.
#[derive(Debug, Clone, Copy)]
enum Mark {
    /// glibc: the arena's place in malloc_info's list, its address, its high-water mark.
    Arena {
        index: u64,
        id: u64,
        max: u64,
    },
    /// jemalloc: the thread's running totals of bytes allocated and freed.
    Allocation {
        allocated: u64,
        deallocated: u64,
    },
    Unreadable,
}

impl Mark {
    fn read(live: &Allocator) -> Mark {
        if live.name == Kind::Glibc {
            let arena = thread_arena::read(live);
            if let (Some(index), Some(id), Some(max)) = (arena.index, arena.id, arena.system_max) {
                return Mark::Arena { index, id, max };
            }
        }
        match allocator::jemalloc_thread_bytes() {
            Some((allocated, deallocated)) => Mark::Allocation { allocated, deallocated },
            None => Mark::Unreadable,
        }
    }
}

/// A call in flight on an arena: its thread, that thread's minor faults when last read (None
/// until another call overlaps it), and the bytes of the arena's rises shared to it so far.
#[derive(Debug)]
struct Share {
    token: u64,
    thread: u32,
    faults: Option<u64>,
    bytes: u64,
}

#[derive(Debug)]
struct Pending {
    mark: Mark,
    started: Instant,
}

/// An arena as the calls see it: its high-water mark at the last reading, and the calls in
/// flight on it.
#[derive(Debug, Default)]
struct Arena {
    seen: Option<u64>,
    calls: Vec<Share>,
}

#[derive(Debug, Default)]
struct State {
    entries: Map<String, Tally>,
    names_seen: u64,
    threads: Map<u32, Seen>,
    /// By the arena's address.
    arenas: Map<u64, Arena>,
    /// Calls begun and not ended, in slots: a token is its slot in the low half and a serial
    /// number above it, which tells a reused slot from the call that left it.
    pending: Vec<Option<(u64, Pending)>>,
    free_slots: Vec<usize>,
    serial: u64,
    duration_counts: [u64; DURATION_BOUNDS.len()],
    duration_sum: f64,
    own_calls: u64,
    own_cpu: f64,
}

/// The figures of every call measured in a process (or in one test's ledger).
#[derive(Debug)]
pub struct Ledger {
    limit: usize,
    state: Mutex<State>,
}

/// The calling thread's kernel id, asked of the kernel once per thread (a system call on
/// every call costs microseconds with the caches cold after a request), and again after a
/// fork: the thread that forked is another thread in the child.
fn own_thread() -> u32 {
    thread_local! {
        static TID: Cell<Option<(u64, u32)>> = const { Cell::new(None) };
    }
    let generation = procfs::fork_generation();
    if let (Some(generation), Some((asked_in, tid))) = (generation, TID.with(Cell::get)) {
        if asked_in == generation {
            return tid;
        }
    }
    // SAFETY: gettid has no preconditions.
    let tid = u32::try_from(unsafe { libc::gettid() }).unwrap_or(0);
    if let Some(generation) = generation {
        TID.with(|cell| cell.set(Some((generation, tid))));
    }
    tid
}

impl Ledger {
    /// `limit`: names kept at most, "other" aside.
    pub fn new(limit: usize) -> Ledger {
        Ledger { limit, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is whole before the lock is let go, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A call starts on this thread: reads its mark; the token is for `end`.
    pub fn begin(&self, live: &Allocator) -> u64 {
        let mark = Mark::read(live);
        let thread = own_thread();
        let started = Instant::now();
        let mut state = self.state();
        let token = state.park(Pending { mark, started });
        if let Mark::Arena { id, max, .. } = mark {
            let arena = state.arenas.entry(id).or_default();
            // A rise so far is the calls' in flight already; then this one joins them.
            arena.share_rise(max, thread);
            // Faults are counted from the moment calls overlap: before it, a rise is the lone
            // call's whatever pages it touched (and getrusage is spared while they do not).
            let faults = if arena.calls.is_empty() {
                None
            } else {
                for call in arena.calls.iter_mut().filter(|call| call.faults.is_none()) {
                    call.faults = faults_now(call.thread, thread);
                }
                thread_faults::own().ok()
            };
            arena.calls.push(Share { token, thread, faults, bytes: 0 });
        }
        token
    }

    /// The call of `token` ended on this thread, as one call of `name`. An unknown token (one
    /// ended already) is ignored: false.
    pub fn end(&self, live: &Allocator, token: u64, name: &str) -> bool {
        let after = Mark::read(live);
        let ended = Instant::now();
        let thread = own_thread();
        let mut state = self.state();
        let Some(Pending { mark, started }) = state.unpark(token) else {
            return false;
        };
        let (raised, arena) = match (mark, after) {
            (Mark::Arena { index, id, .. }, after) => {
                let raised = state.arenas.get_mut(&id).map_or(0, |arena| {
                    match after {
                        Mark::Arena { id: id_after, max, .. } if id_after == id => arena.share_rise(max, thread),
                        _ => {}
                    }
                    arena.finish(token)
                });
                (raised, Some(index))
            }
            (
                Mark::Allocation { allocated, deallocated },
                Mark::Allocation { allocated: allocated_after, deallocated: deallocated_after },
            ) => {
                let allocated = allocated_after.wrapping_sub(allocated) as i64;
                let freed = deallocated_after.wrapping_sub(deallocated) as i64;
                (u64::try_from(allocated.saturating_sub(freed)).unwrap_or(0), None)
            }
            _ => (0, None),
        };
        let name = clean(name);
        state.tally_for(&name, self.limit).count(raised);
        state.add_duration(ended.duration_since(started).as_secs_f64());
        state.remember_thread(thread, arena, &name, ended);
        true
    }

    /// One call whose own bookkeeping took `seconds` of its thread's CPU.
    pub fn count_own(&self, seconds: f64) {
        let mut state = self.state();
        state.own_calls += 1;
        state.own_cpu += seconds;
    }

    /// (calls timed, CPU seconds their bookkeeping took).
    pub fn overhead(&self) -> (u64, f64) {
        let state = self.state();
        (state.own_calls, state.own_cpu)
    }

    /// Every name's figures, the largest high-water raises first.
    pub fn entries(&self) -> Vec<(String, Tally)> {
        let mut entries: Vec<(String, Tally)> =
            self.state().entries.iter().map(|(name, tally)| (name.clone(), tally.clone())).collect();
        entries.sort_by(|(a, x), (b, y)| {
            y.raised_bytes.cmp(&x.raised_bytes).then(y.calls.cmp(&x.calls)).then_with(|| a.cmp(b))
        });
        entries
    }

    /// Calls per duration bucket (DURATION_BOUNDS), and the seconds they took in all.
    pub fn durations(&self) -> ([u64; DURATION_BOUNDS.len()], f64) {
        let state = self.state();
        (state.duration_counts, state.duration_sum)
    }

    /// The threads last seen ending a call, by kernel thread id, live ones only.
    pub fn threads(&self) -> Vec<(u32, ThreadSeen)> {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let seen_at = |at: Instant| {
            let since =
                wall.checked_sub(now.saturating_duration_since(at)).and_then(|t| t.duration_since(UNIX_EPOCH).ok());
            since.map_or(0.0, |since| since.as_secs_f64())
        };
        let mut state = self.state();
        state.threads.retain(|&tid, _| thread_is_live(tid));
        let seen = |(&tid, seen): (&u32, &Seen)| {
            (tid, ThreadSeen { arena: seen.arena, name: seen.name.clone(), seen_at: seen_at(seen.at) })
        };
        state.threads.iter().map(seen).collect()
    }
}

fn thread_is_live(tid: u32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

impl Arena {
    /// The arena's rise since its last reading, shared among the calls in flight on it by the
    /// faults each made since (the rest of an uneven split to the one that made most).
    fn share_rise(&mut self, max: u64, own: u32) {
        let seen = self.seen;
        if seen.is_none_or(|seen| max > seen) {
            self.seen = Some(max);
        }
        let Some(seen) = seen.filter(|&seen| max > seen) else { return };
        let calls = &mut self.calls;
        if calls.is_empty() {
            return;
        }
        let rise = max - seen;
        if let [only] = calls.as_mut_slice() {
            only.bytes += rise;
            return;
        }
        let now: Vec<Option<u64>> = calls.iter().map(|call| faults_now(call.thread, own)).collect();
        let made: Vec<u64> = calls
            .iter()
            .zip(&now)
            .map(|(call, now)| match (call.faults, now) {
                (Some(before), Some(now)) => now.saturating_sub(before),
                _ => 0,
            })
            .collect();
        let total: u64 = made.iter().sum();
        let mut shares: Vec<u64> = made
            .iter()
            .map(|&count| match total {
                0 => rise / calls.len() as u64,
                _ => (u128::from(rise) * u128::from(count) / u128::from(total)) as u64,
            })
            .collect();
        let most = made.iter().enumerate().fold(0, |best, (i, &count)| if count > made[best] { i } else { best });
        shares[most] += rise - shares.iter().sum::<u64>();
        for ((call, share), now) in calls.iter_mut().zip(shares).zip(now) {
            call.bytes += share;
            call.faults = now.or(call.faults);
        }
    }

    /// The call's share of the arena's rises; it is no longer in flight.
    fn finish(&mut self, token: u64) -> u64 {
        let calls = &mut self.calls;
        calls.iter().position(|call| call.token == token).map_or(0, |at| calls.swap_remove(at).bytes)
    }
}

impl State {
    fn park(&mut self, pending: Pending) -> u64 {
        // 29 bits of serial above 32 of slot: a token stays a Ruby Fixnum.
        self.serial = (self.serial + 1) & 0x1fff_ffff;
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.pending.push(None);
            self.pending.len() - 1
        });
        let token = (self.serial << 32) | slot as u64;
        self.pending[slot] = Some((token, pending));
        token
    }

    fn unpark(&mut self, token: u64) -> Option<Pending> {
        let slot = usize::try_from(token & 0xffff_ffff).ok()?;
        let entry = self.pending.get_mut(slot)?;
        if entry.as_ref().is_none_or(|(parked, _)| *parked != token) {
            return None;
        }
        self.free_slots.push(slot);
        entry.take().map(|(_, pending)| pending)
    }

    /// A name past the limit makes room by folding the smallest other entry into OTHER.
    fn tally_for(&mut self, name: &str, limit: usize) -> &mut Tally {
        if !self.entries.contains_key(name) {
            if self.entries.len() >= limit {
                let smallest = self
                    .entries
                    .iter()
                    .filter(|(entry, _)| *entry != OTHER)
                    .min_by_key(|(_, tally)| (tally.raised_bytes, tally.order))
                    .map(|(entry, _)| entry.clone());
                if let Some(tally) = smallest.and_then(|smallest| self.entries.remove(&smallest)) {
                    self.names_seen += 1;
                    let order = self.names_seen;
                    self.entries
                        .entry(OTHER.to_owned())
                        .or_insert_with(|| Tally { order, ..Tally::default() })
                        .add(&tally);
                }
            }
            self.names_seen += 1;
            let order = self.names_seen;
            self.entries.insert(name.to_owned(), Tally { order, ..Tally::default() });
        }
        self.entries.get_mut(name).expect("inserted above")
    }

    fn add_duration(&mut self, seconds: f64) {
        let bucket = DURATION_BOUNDS.iter().position(|&bound| seconds <= bound).unwrap_or(DURATION_BOUNDS.len() - 1);
        self.duration_counts[bucket] += 1;
        self.duration_sum += seconds;
    }

    fn remember_thread(&mut self, thread: u32, arena: Option<u64>, name: &str, at: Instant) {
        if let Some(seen) = self.threads.get_mut(&thread) {
            seen.arena = arena;
            if seen.name != name {
                name.clone_into(&mut seen.name);
            }
            seen.at = at;
            return;
        }
        if self.threads.len() >= THREADS {
            self.threads.retain(|&tid, _| thread_is_live(tid));
        }
        if self.threads.len() < THREADS {
            self.threads.insert(thread, Seen { arena, name: name.to_owned(), at });
        }
    }
}

/// The calling thread's count is read directly, another's from procfs (None once it ended).
fn faults_now(thread: u32, own: u32) -> Option<u64> {
    if thread == own {
        thread_faults::own().ok()
    } else {
        thread_faults::of(thread).ok().flatten()
    }
}

/// A request path's first segment ("/posts" of "/posts/1?page=2"), or "/" for one that
/// does not start with a slash: a name for requests no router named.
pub fn first_segment(path: &str) -> &str {
    if !path.starts_with('/') {
        return "/";
    }
    let end = path[1..].find(['/', '?']).map_or(path.len(), |at| at + 1);
    &path[..end]
}

/// A name as one line of at most NAME_LENGTH characters: control characters become spaces,
/// the ends are trimmed, and an empty one is "(unnamed)".
pub fn clean(name: &str) -> std::borrow::Cow<'_, str> {
    let tidy = |c: char| !c.is_control();
    // Most names are short printable ASCII, told byte by byte before any character is decoded.
    let ascii = name.len() <= NAME_LENGTH && name.bytes().all(|b| (b' '..=b'~').contains(&b));
    let fits = ascii || (name.chars().count() <= NAME_LENGTH && name.chars().all(tidy));
    if fits && !name.is_empty() && name.trim() == name {
        return name.into();
    }
    let spaced: String = name.chars().map(|c| if tidy(c) { c } else { ' ' }).collect();
    let text = spaced.trim();
    if text.is_empty() {
        return "(unnamed)".into();
    }
    if text.chars().count() <= NAME_LENGTH {
        return text.to_owned().into();
    }
    let mut cut: String = text.chars().take(NAME_LENGTH - 1).collect();
    cut.push('…');
    cut.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocator whose calls are only counted: glibc's marks would run thread_arena's
    /// process-wide check beside that module's own tests, which make arenas meanwhile. (The
    /// marks are tested on the real thing by the gem's attribution tests.)
    fn counted_only() -> Allocator {
        Allocator { name: Kind::Tcmalloc, version: "(calls only)".into() }
    }

    #[test]
    fn names_are_one_line_and_bounded() {
        assert_eq!(clean("posts#index"), "posts#index");
        assert_eq!(clean(" a\n\tb "), "a  b");
        assert_eq!(clean("\n\t"), "(unnamed)");
        assert_eq!(clean(""), "(unnamed)");
        let long = clean(&"é".repeat(500)).into_owned();
        assert_eq!(long.chars().count(), NAME_LENGTH);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_path_is_named_by_its_first_segment() {
        assert_eq!(first_segment("/assets/app-123.css"), "/assets");
        assert_eq!(first_segment("/posts?page=2"), "/posts");
        assert_eq!(first_segment("/"), "/");
        assert_eq!(first_segment(""), "/");
        assert_eq!(first_segment("posts"), "/");
        assert_eq!(first_segment("/é/x"), "/é");
    }

    #[test]
    fn the_smallest_name_is_folded_into_other_and_no_call_is_lost() {
        let ledger = Ledger::new(3);
        let live = counted_only();
        for i in 0..10 {
            let token = ledger.begin(&live);
            assert!(ledger.end(&live, token, &format!("name {i}")));
        }
        let entries = ledger.entries();
        assert!(entries.len() <= 4, "{entries:?}");
        assert!(entries.iter().any(|(name, _)| name == OTHER));
        assert_eq!(entries.iter().map(|(_, tally)| tally.calls).sum::<u64>(), 10);
        assert_eq!(ledger.durations().0.iter().sum::<u64>(), 10);
    }

    #[test]
    fn a_thread_is_remembered_with_its_last_call_and_when_it_ended() {
        let ledger = Ledger::new(LIMIT);
        let live = counted_only();
        let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
        for name in ["first", "last"] {
            let token = ledger.begin(&live);
            ledger.end(&live, token, name);
        }
        let after = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
        let threads = ledger.threads();
        let (_, seen) = threads.iter().find(|(tid, _)| *tid == own_thread()).expect("this thread");
        assert_eq!(seen.name, "last");
        assert!((before..=after).contains(&seen.seen_at), "{before} <= {} <= {after}", seen.seen_at);
    }

    #[test]
    fn a_forked_child_asks_its_own_thread_id() {
        let parent = own_thread();
        let mut pipe = [0; 2];
        // SAFETY: a two-int array for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only reads its thread id (thread-local, an atomic, gettid), writes
        // it to the pipe and exits, without allocating: safe after fork in a threaded process.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let tid = own_thread().to_ne_bytes();
            // SAFETY: writes the four bytes of `tid` to the pipe, then ends the child at once.
            unsafe {
                libc::write(pipe[1], tid.as_ptr().cast(), tid.len());
                libc::_exit(0);
            }
        }
        let mut tid = [0u8; 4];
        // SAFETY: closes this side's write end (a child that ended without writing then reads
        // as end of file, not a wait), reads at most four bytes into `tid`, reaps the child.
        let read = unsafe {
            libc::close(pipe[1]);
            let read = libc::read(pipe[0], tid.as_mut_ptr().cast(), tid.len());
            libc::waitpid(child, std::ptr::null_mut(), 0);
            libc::close(pipe[0]);
            read
        };
        assert_eq!(read, 4);
        // The child's only thread has the child's pid for its id.
        assert_eq!(u32::from_ne_bytes(tid), u32::try_from(child).expect("a pid"), "the parent's was {parent}");
    }

    #[test]
    fn a_token_ends_once() {
        let ledger = Ledger::new(LIMIT);
        let live = counted_only();
        let token = ledger.begin(&live);
        assert!(ledger.end(&live, token, "once"));
        assert!(!ledger.end(&live, token, "once"));
        assert!(!ledger.end(&live, token + 1, "never begun"));
        // The next call takes the freed slot: the former call's token does not end it.
        let reused = ledger.begin(&live);
        assert!(!ledger.end(&live, token, "once"));
        assert!(ledger.end(&live, reused, "once"));
        assert_eq!(ledger.entries()[0].1.calls, 2);
    }

    #[test]
    fn a_rise_is_shared_by_the_faults_each_call_made() {
        let mut arena = Arena::default();
        let own = own_thread();
        arena.share_rise(1000, own);
        // Two calls in flight; the first is this thread, whose faults rise from 0 (a fresh
        // test thread may have made none: 8 MiB are mapped afresh and touched).
        std::hint::black_box(vec![1u8; 8 << 20]);
        arena.calls = vec![
            Share { token: 1, thread: own, faults: Some(0), bytes: 0 },
            Share { token: 2, thread: u32::MAX, faults: Some(0), bytes: 0 },
        ];
        arena.share_rise(1000 + 4096, own);
        // The other thread is gone (no faults read): all of the rise is this thread's.
        assert_eq!(arena.finish(1), 4096);
        assert_eq!(arena.finish(2), 0);
        assert!(arena.calls.is_empty());
        // A fall or an unchanged mark shares nothing and keeps the high-water mark.
        arena.share_rise(10, own);
        assert_eq!(arena.seen, Some(1000 + 4096));
    }
}
