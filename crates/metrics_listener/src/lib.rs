//! /metrics from a native thread, which answers without Ruby's GVL: an in-process Ruby
//! server waits for the GVL behind every request thread that holds it (seconds, with 25
//! threads building strings), which is when memory matters. Ruby renders the text: each
//! scrape asks for a fresh one and waits up to FRESH_WAIT for it, then serves the newest
//! it has, so a busy process answers at once with the last figures and an idle one with
//! new ones.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a scrape waits for Ruby to render fresh figures before it serves the last.
pub const FRESH_WAIT: Duration = Duration::from_millis(30);
/// A client that sends nothing, or reads nothing, is dropped after this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A request's head is small; a longer one is refused.
const MAX_HEAD: usize = 8 * 1024;
/// How often a wait for a scrape looks at its cancel flag.
const POLL: Duration = Duration::from_millis(50);
/// Clients answered at once; Prometheus sends one scrape at a time.
const MAX_CLIENTS: usize = 16;

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
    changed: Condvar,
    stop: AtomicBool,
    clients: AtomicUsize,
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
}

impl Listener {
    /// Listens on bind:port (port 0: any free port) and starts answering, with `body`
    /// until the first fresh one comes.
    pub fn start(bind: &str, port: u16, content_type: &str, body: String) -> io::Result<Listener> {
        let listener = TcpListener::bind((bind, port))?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { body: body.into(), asked: 0, rendered: 0 }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            content_type: content_type.to_owned(),
        });
        let serving = Arc::clone(&shared);
        let thread = thread::Builder::new().name("bloat_probe-metrics".into()).spawn(move || {
            for stream in listener.incoming() {
                if serving.stop.load(Ordering::Acquire) {
                    break;
                }
                // A failed accept ends that scrape only.
                if let Ok(stream) = stream {
                    serve_apart(&serving, stream);
                }
            }
        })?;
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
        self.shared.changed.notify_all();
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
        self.shared.changed.notify_all();
        // accept() returns for this connection, and the loop sees `stop`.
        let _ = TcpStream::connect_timeout(&wake_address(self.local), CLIENT_TIMEOUT);
        let _ = thread.join();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where to connect to reach our own listener: a wildcard address is reached on loopback.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let mut address = local;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    address
}

/// Each client on a thread of its own, so that one that sends nothing does not hold up the
/// others; past MAX_CLIENTS at once, the connection is closed unanswered.
fn serve_apart(shared: &Arc<Shared>, stream: TcpStream) {
    if shared.clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
        shared.clients.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let serving = Arc::clone(shared);
    let spawned = thread::Builder::new().name("bloat_probe-scrape".into()).spawn(move || {
        // A client that goes away mid-answer has nothing to be told.
        let _ = answer(&serving, stream);
        serving.clients.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        shared.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

fn answer(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    // A 405 names the methods allowed, as RFC 9110 asks (and the Rack app does).
    let (status, content_type, body, head_only, allow) = match route(&head) {
        Route::Metrics { head_only } => ("200 OK", shared.content_type.as_str(), fresh_body(shared), head_only, ""),
        Route::NotFound => ("404 Not Found", "text/plain", Arc::from("bloat_probe serves /metrics\n"), false, ""),
        Route::NotAllowed => {
            ("405 Method Not Allowed", "text/plain", Arc::from("GET only\n"), false, "allow: GET, HEAD\r\n")
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{allow}connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response)?;
    stream.shutdown(Shutdown::Write)
}

/// Asks Ruby for fresh figures and waits up to FRESH_WAIT; the newest body either way.
fn fresh_body(shared: &Shared) -> Arc<str> {
    let deadline = Instant::now() + FRESH_WAIT;
    let mut state = shared.state();
    state.asked += 1;
    let wanted = state.asked;
    shared.changed.notify_all();
    while state.rendered < wanted && !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        state = match shared.changed.wait_timeout(state, deadline - now) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
    Arc::clone(&state.body)
}

/// The request's head, up to its blank line.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head over 8 KiB"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
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

    #[test]
    fn a_silent_client_does_not_stop_the_others() {
        let listener = Listener::start("127.0.0.1", 0, TEXT, "x\n".into()).expect("listen");
        let _silent = TcpStream::connect(listener.local_addr()).expect("connect");
        let started = Instant::now();
        assert!(get(&listener, "GET /metrics HTTP/1.1\r\n\r\n").ends_with("x\n"));
        assert!(started.elapsed() < CLIENT_TIMEOUT, "{:?}", started.elapsed());
    }
}
