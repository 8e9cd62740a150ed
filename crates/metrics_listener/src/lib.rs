//! /metrics from a native thread, which answers without Ruby's GVL: an in-process Ruby
//! server waits for the GVL behind every request thread that holds it (seconds, with 25
//! threads building strings), which is when memory matters. Ruby renders the text: each
//! scrape asks for a fresh one and waits up to FRESH_WAIT for it, then serves the newest
//! it has, so a busy process answers at once with the last figures and an idle one with
//! new ones.
//!
//! One thread serves every connection and never blocks on one (poll(2)): a client that
//! sends nothing, or reads slowly, holds a slot and not the thread, and a scrape waiting
//! for fresh figures holds up no other. When all MAX_CONNECTIONS slots are held, the
//! longest-held of those that have not sent a whole request is closed for each newcomer,
//! so that clients holding connections open cannot keep a scrape out: a scrape sends its
//! request at once and is answered as soon as it has arrived.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a scrape waits for Ruby to render fresh figures before it serves the last.
pub const FRESH_WAIT: Duration = Duration::from_millis(30);
/// A client that has not sent its request and read the answer by then is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A request's head is small; a longer one is refused.
const MAX_HEAD: usize = 8 * 1024;
/// How often a wait for a scrape looks at its cancel flag.
const POLL: Duration = Duration::from_millis(50);
/// Connections held at once; past this, one is closed for each newcomer.
const MAX_CONNECTIONS: usize = 256;
/// Connections accepted between two looks at the ones held, so that a burst of newcomers
/// cannot push out a scrape before its request is read.
const ACCEPT_BATCH: usize = 32;

pub struct Listener {
    shared: Arc<Shared>,
    local: SocketAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The process that started the thread: a forked child has the listener's memory but
    /// not its thread, which it must not join.
    owner: u32,
}

struct Shared {
    state: Mutex<State>,
    /// Ruby's wait for a scrape (wait_for_scrape) is woken through this...
    changed: Condvar,
    /// ...and the listener's thread, asleep in poll, through a byte written here.
    wake: UnixStream,
    stop: AtomicBool,
    content_type: String,
}

struct State {
    body: Arc<str>,
    /// Scrapes that asked for fresh figures, counted; `rendered` is the count the newest
    /// body answers.
    asked: u64,
    rendered: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake_up(&self) {
        self.changed.notify_all();
        // A full pipe already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
    }
}

impl Listener {
    /// Listens on bind:port (port 0: any free port) and starts answering, with `body`
    /// until the first fresh one comes.
    pub fn start(bind: &str, port: u16, content_type: &str, body: String) -> io::Result<Listener> {
        let listener = TcpListener::bind((bind, port))?;
        listener.set_nonblocking(true)?;
        // std listens with a backlog of 128; the kernel's own cap (somaxconn) instead, so
        // that a scrape's SYN is not dropped (and retried a second later) while clients
        // that reconnect as fast as they are closed fill the queue.
        // SAFETY: listen on the socket this listener owns, which is bound and listening.
        if unsafe { libc::listen(listener.as_raw_fd(), libc::c_int::MAX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let local = listener.local_addr()?;
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { body: body.into(), asked: 0, rendered: 0 }),
            changed: Condvar::new(),
            wake,
            stop: AtomicBool::new(false),
            content_type: content_type.to_owned(),
        });
        let serving = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("bloat_probe-metrics".into())
            .spawn(move || serve(&serving, &listener, &woken))?;
        Ok(Listener { shared, local, thread: Mutex::new(Some(thread)), owner: std::process::id() })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits until a scrape asks for fresh figures (returns the count to publish them
    /// under), `timeout` passes or `cancel` is set (None).
    pub fn wait_for_scrape(&self, timeout: Duration, cancel: &AtomicBool) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        loop {
            if state.asked > state.rendered {
                return Some(state.asked);
            }
            let now = Instant::now();
            if now >= deadline || cancel.load(Ordering::Relaxed) || self.shared.stop.load(Ordering::Acquire) {
                return None;
            }
            let wait = POLL.min(deadline - now);
            state = match self.shared.changed.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The figures rendered for the scrapes counted up to `asked`.
    pub fn publish(&self, body: String, asked: u64) {
        let mut state = self.shared.state();
        state.body = body.into();
        state.rendered = state.rendered.max(asked);
        drop(state);
        self.shared.wake_up();
    }

    /// Stops answering and closes the port; idempotent. In a forked child it only lets go
    /// of the parent's thread, which the child does not have.
    pub fn stop(&self) {
        let taken = self.thread.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let Some(thread) = taken else { return };
        if std::process::id() != self.owner {
            std::mem::forget(thread);
            return;
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_up();
        let _ = thread.join();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: its request head as it arrives, then, for /metrics, a wait for fresh
/// figures, then the answer as it is written.
struct Connection {
    stream: TcpStream,
    accepted: Instant,
    stage: Stage,
}

enum Stage {
    Reading(Vec<u8>),
    /// Waiting for the figures of scrape `asked`, until `until`.
    Fresh {
        asked: u64,
        until: Instant,
        head_only: bool,
    },
    /// The answer, and how much of it has been written.
    Writing(Vec<u8>, usize),
}

impl Connection {
    /// Moves on as far as it can without blocking; false once answered, or failed.
    fn advance(&mut self, shared: &Shared, now: Instant) -> bool {
        loop {
            let next = match &mut self.stage {
                Stage::Reading(head) => match read_head(&mut self.stream, head) {
                    Ok(true) => request(shared, &String::from_utf8_lossy(head), now),
                    Ok(false) => return true,
                    Err(_) => return false,
                },
                Stage::Fresh { asked, until, head_only } => {
                    let state = shared.state();
                    if state.rendered < *asked && now < *until {
                        return true;
                    }
                    Stage::Writing(response("200 OK", &shared.content_type, &state.body, *head_only, ""), 0)
                }
                Stage::Writing(answer, written) => {
                    return match write_some(&mut self.stream, answer, written) {
                        Ok(true) => {
                            // A client that goes away mid-answer has nothing to be told.
                            let _ = self.stream.shutdown(Shutdown::Write);
                            false
                        }
                        Ok(false) => true,
                        Err(_) => false,
                    };
                }
            };
            self.stage = next;
        }
    }

    /// What poll should wake this connection for, and until when it may wait.
    fn interest(&self) -> (libc::c_short, Instant) {
        let timeout = self.accepted + CLIENT_TIMEOUT;
        match &self.stage {
            Stage::Reading(_) => (libc::POLLIN, timeout),
            Stage::Fresh { until, .. } => (0, timeout.min(*until)),
            Stage::Writing(..) => (libc::POLLOUT, timeout),
        }
    }
}

/// Reads what has arrived; true once the head is complete (or the client stopped sending).
fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(read) => head.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head over 8 KiB"));
        }
        if head.windows(4).any(|window| window == b"\r\n\r\n") {
            return Ok(true);
        }
    }
}

/// Writes what the socket takes; true once all of `answer` is written.
fn write_some(stream: &mut TcpStream, answer: &[u8], written: &mut usize) -> io::Result<bool> {
    while *written < answer.len() {
        match stream.write(&answer[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(sent) => *written += sent,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// What a complete request leads to: for /metrics, Ruby is asked for fresh figures, which
/// it has FRESH_WAIT to render; anything else is answered at once.
fn request(shared: &Shared, head: &str, now: Instant) -> Stage {
    match route(head) {
        Route::Metrics { head_only } => {
            let mut state = shared.state();
            state.asked += 1;
            let asked = state.asked;
            drop(state);
            shared.changed.notify_all();
            Stage::Fresh { asked, until: now + FRESH_WAIT, head_only }
        }
        Route::NotFound => {
            Stage::Writing(response("404 Not Found", "text/plain", "bloat_probe serves /metrics\n", false, ""), 0)
        }
        // A 405 names the methods allowed, as RFC 9110 asks (and the Rack app does).
        Route::NotAllowed => Stage::Writing(
            response("405 Method Not Allowed", "text/plain", "GET only\n", false, "allow: GET, HEAD\r\n"),
            0,
        ),
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool, allow: &str) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{allow}connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

/// The listener's thread: accepts, reads and answers every connection without blocking on
/// any, until `stop`.
fn serve(shared: &Shared, listener: &TcpListener, woken: &UnixStream) {
    let mut connections: Vec<Connection> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        wait_for_ready(listener, woken, &connections);
        // The wake-ups are only wake-ups.
        let mut drained = [0u8; 64];
        while matches!((&*woken).read(&mut drained), Ok(n) if n > 0) {}
        for _ in 0..ACCEPT_BATCH {
            // A failed accept ends that connection only.
            let Ok((stream, _)) = listener.accept() else { break };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if connections.len() >= MAX_CONNECTIONS {
                // The longest-held of those that have not sent a whole request (they are
                // kept in the order they came): one being answered is let finish.
                let idle = connections.iter().position(|held| matches!(held.stage, Stage::Reading(_)));
                connections.remove(idle.unwrap_or(0));
            }
            connections.push(Connection { stream, accepted: Instant::now(), stage: Stage::Reading(Vec::new()) });
        }
        let now = Instant::now();
        connections.retain_mut(|connection| {
            now.duration_since(connection.accepted) < CLIENT_TIMEOUT && connection.advance(shared, now)
        });
    }
}

/// Sleeps until the listener, a wake-up or a connection is ready, or the first deadline
/// of a connection comes (poll(2) over their descriptors).
fn wait_for_ready(listener: &TcpListener, woken: &UnixStream, connections: &[Connection]) {
    let watch = |fd, events| libc::pollfd { fd, events, revents: 0 };
    let mut descriptors = vec![watch(listener.as_raw_fd(), libc::POLLIN), watch(woken.as_raw_fd(), libc::POLLIN)];
    let mut deadline = Instant::now() + CLIENT_TIMEOUT;
    for connection in connections {
        let (events, until) = connection.interest();
        descriptors.push(watch(connection.stream.as_raw_fd(), events));
        deadline = deadline.min(until);
    }
    // Rounded up, so that a deadline is not polled for again with 0 ms to spare.
    let millis = deadline.saturating_duration_since(Instant::now()).as_millis() + 1;
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    // SAFETY: `descriptors` is a live array of as many pollfd as its length says, each
    // naming a descriptor this thread holds open; poll writes only their revents.
    let _ = unsafe { libc::poll(descriptors.as_mut_ptr(), descriptors.len() as libc::nfds_t, millis) };
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    NotAllowed,
}

fn route(head: &str) -> Route {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match method {
        "GET" | "HEAD" if path == "/metrics" => Route::Metrics { head_only: method == "HEAD" },
        "GET" | "HEAD" => Route::NotFound,
        _ => Route::NotAllowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

    fn get(listener: &Listener, request: &str) -> String {
        let mut stream = TcpStream::connect(listener.local_addr()).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics { head_only: true });
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1\r\n\r\n"), Route::NotAllowed);
        assert_eq!(route(""), Route::NotAllowed);
    }

    #[test]
    fn nobody_rendering_serves_the_last_body_within_the_wait() {
        let listener = Listener::start("127.0.0.1", 0, TEXT, "first 1\n".into()).expect("listen");
        let started = Instant::now();
        let response = get(&listener, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(started.elapsed() < FRESH_WAIT + Duration::from_millis(500), "{:?}", started.elapsed());
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains(&format!("content-type: {TEXT}\r\n")), "{response}");
        assert!(response.ends_with("\r\n\r\nfirst 1\n"), "{response}");
        assert!(get(&listener, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let refused = get(&listener, "DELETE /metrics HTTP/1.1\r\n\r\n");
        assert!(refused.starts_with("HTTP/1.1 405 ") && refused.contains("\r\nallow: GET, HEAD\r\n"), "{refused}");
    }

    #[test]
    fn a_scrape_asks_for_fresh_figures_and_gets_them() {
        let listener = Arc::new(Listener::start("127.0.0.1", 0, TEXT, "old\n".into()).expect("listen"));
        let renderer = {
            let listener = Arc::clone(&listener);
            thread::spawn(move || {
                let asked = listener.wait_for_scrape(Duration::from_secs(10), &AtomicBool::new(false));
                let asked = asked.expect("a scrape asked");
                listener.publish(format!("fresh {asked}\n"), asked);
            })
        };
        let response = get(&listener, "GET /metrics HTTP/1.1\r\n\r\n");
        renderer.join().expect("renderer");
        assert!(response.ends_with("fresh 1\n"), "{response}");
        let head = get(&listener, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.contains("content-length: 8\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn a_wait_ends_on_cancel_and_stop_closes_the_port() {
        let listener = Listener::start("127.0.0.1", 0, TEXT, String::new()).expect("listen");
        let cancel = AtomicBool::new(true);
        let started = Instant::now();
        assert_eq!(listener.wait_for_scrape(Duration::from_secs(10), &cancel), None);
        assert!(started.elapsed() < Duration::from_secs(1));
        let address = listener.local_addr();
        listener.stop();
        listener.stop();
        assert!(TcpStream::connect(address).is_err(), "the port is closed");
    }

    /// Holds one connection at a time, reopened as soon as the listener closes it: silent,
    /// or asking for the figures and never reading them; until `stop`.
    fn hold_connections(address: SocketAddr, ask: bool, stop: Arc<AtomicBool>) -> JoinHandle<u32> {
        thread::spawn(move || {
            let mut opened = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = TcpStream::connect(address) else { continue };
                opened += 1;
                if ask {
                    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
                    thread::sleep(CLIENT_TIMEOUT + Duration::from_millis(500));
                    continue;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut byte = [0u8; 1];
                while !stop.load(Ordering::Relaxed) {
                    match stream.read(&mut byte) {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        _ => break,
                    }
                }
            }
            opened
        })
    }

    /// 300 silent clients and 50 that never read a 4 MiB answer (more than the socket's
    /// buffers hold), each reconnecting as soon as it is closed, hold more connections than
    /// the listener keeps: every scrape meanwhile is answered whole within a second.
    #[test]
    fn clients_that_hold_connections_open_never_keep_a_scrape_out() {
        let body = format!("{}\n", "x".repeat(4 << 20));
        let listener = Listener::start("127.0.0.1", 0, TEXT, body.clone()).expect("listen");
        let stop = Arc::new(AtomicBool::new(false));
        let holders: Vec<_> =
            (0..350).map(|index| hold_connections(listener.local_addr(), index >= 300, Arc::clone(&stop))).collect();
        thread::sleep(Duration::from_millis(500));
        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let started = Instant::now();
            let response = get(&listener, "GET /metrics HTTP/1.1\r\n\r\n");
            slowest = slowest.max(started.elapsed());
            assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with(&body), "{}", response.len());
        }
        stop.store(true, Ordering::Relaxed);
        let opened: u32 = holders.into_iter().map(|holder| holder.join().expect("holder")).sum();
        assert!(opened > MAX_CONNECTIONS as u32, "only {opened} connections were held");
        assert!(slowest < Duration::from_secs(1), "a scrape took {slowest:?}");
    }

    #[test]
    fn a_silent_client_does_not_stop_the_others() {
        let listener = Listener::start("127.0.0.1", 0, TEXT, "x\n".into()).expect("listen");
        let _silent = TcpStream::connect(listener.local_addr()).expect("connect");
        let started = Instant::now();
        assert!(get(&listener, "GET /metrics HTTP/1.1\r\n\r\n").ends_with("x\n"));
        assert!(started.elapsed() < CLIENT_TIMEOUT, "{:?}", started.elapsed());
    }
}
