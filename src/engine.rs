//! The connection layer: hyper's HTTP/1.1 on one I/O thread (a
//! single-threaded tokio runtime), handing complete requests to the worker
//! pool and writing their answers back.
//!
//! # Why hyper and not tiny_http
//!
//! An attack test found tiny_http 0.12 unfit to face a network: a lying
//! `Content-Length` aborted the process (its drain-on-drop allocates the
//! declared size), header lines were buffered without limit, and a request
//! reached a worker before its body had arrived, so four slow bodies held
//! all four workers. The maintained fork, `tiny_http_fork` 0.12.17, fixes the
//! drain and two CVEs, but we read its source: `read_next_line` still pushes
//! every byte of a header line into an unbounded `Vec`, there is no limit on
//! the number of header lines and no read timeout on a head or a body, a
//! request is still handed over with a lazy body reader, and connections are
//! read on a pool of at most 128 threads, so 128 silent sockets stop it.
//! hyper (the reference HTTP/1.1 implementation in Rust) has what those lack:
//! a cap on the head (`max_header_size`, answered 431), a timer on reading a
//! head (which also ends idle keep-alive connections), RFC 9112 framing (a
//! request with both `Content-Length` and `Transfer-Encoding` is read as
//! chunked and its connection closed after the answer; obs-fold, bare CR or
//! LF and bad lengths refused with 400), and header values that cannot
//! carry CR or LF into a response.
//!
//! # The shape
//!
//! * One thread runs every connection as a task. The head is read and
//!   parsed by hyper; the body is read here, at most [`MAX_BODY`] bytes within
//!   the body deadline. Only then is the request queued for a worker: a
//!   worker never waits on a socket.
//! * Workers (server.rs) take [`Job`]s from the [`Queue`] and answer each
//!   through its one-shot channel; the I/O thread writes the answer.
//! * Bad framing is answered here, without a worker: 400, 408, 413, 431,
//!   each with `Connection: close` when bytes of the request may remain.
//! * Open connections are capped. At the cap, a new connection closes the
//!   connection that has been idle longest (no request in progress), so
//!   thousands of silent sockets cannot keep out a client that has
//!   something to say; if every connection is busy, the new one is closed.
//!   The cap is lowered to what the open-files limit allows, and running out
//!   of descriptors anyway is survived: accept backs off and an idle
//!   connection is closed.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Notify};

use crate::config::Connections;
use crate::error::Error;
use crate::http::{Request, Response, MAX_BODY};

/// The largest request head (request line and headers) accepted: 431 above.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long shutdown waits for requests in progress.
const GRACE: Duration = Duration::from_secs(10);
/// Descriptors kept free of connections: standard streams, the listener,
/// the runtime's poller, key and config files, a mail command's pipes.
const SPARE_FDS: usize = 32;
/// At most one log line per this much time per kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A complete request waiting for a worker, and where its answer goes.
pub struct Job {
    /// The request, body included.
    pub request: Request,
    reply: oneshot::Sender<(&'static str, Response)>,
}

impl Job {
    /// Sends the answer (and the route name for metrics) back to the
    /// connection. A client that has gone meanwhile is no error.
    pub fn answer(self, route: &'static str, response: Response) {
        let _ = self.reply.send((route, response));
    }
}

/// The hand-over between the I/O thread and the workers: a FIFO that
/// workers block on. It holds at most one request per open connection.
#[derive(Default)]
pub struct Queue {
    state: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

impl Queue {
    /// Queues a job; false once the queue is closed (the job is dropped,
    /// and its connection answered 500 by the engine).
    fn push(&self, job: Job) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.1 {
            return false;
        }
        s.0.push_back(job);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next request, or None once the queue is closed and empty.
    pub fn pop(&self) -> Option<Job> {
        let mut s = self.state.lock().ok()?;
        loop {
            if let Some(job) = s.0.pop_front() {
                return Some(job);
            }
            if s.1 {
                return None;
            }
            s = self.ready.wait(s).ok()?;
        }
    }

    /// Lets workers finish what is queued, then leave.
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = true;
        }
        self.ready.notify_all();
    }
}

/// What the engine reports about each answered request (access log,
/// metrics). `path` is the path as sent, without the query, cut short.
pub struct Served<'a> {
    pub ip: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: &'static str,
    pub elapsed: Duration,
}

/// How the engine talks to the rest of the server.
pub struct Hooks {
    /// Renders an error the engine answers itself (bad framing).
    pub render: fn(&Error) -> Response,
    /// Called once per answered request.
    pub served: Box<dyn Fn(&Served) + Send + Sync>,
    /// Called if the I/O thread ends without being asked to.
    pub failed: Box<dyn Fn(String) + Send + Sync>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<String>,
}

/// The running engine.
pub struct Engine {
    /// The bound address.
    pub addr: SocketAddr,
    /// The effective connection cap (after the open-files limit).
    pub max_connections: usize,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Stops accepting, lets requests in progress finish (at most 10 s),
    /// closes every connection and returns when the I/O thread has ended.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the I/O thread on a bound listener. Requests go to `queue`.
pub fn start(
    listener: std::net::TcpListener,
    limits: &Connections,
    reserved_fds: usize,
    queue: Arc<Queue>,
    hooks: Hooks,
) -> Result<Engine, Error> {
    let fail = |e: std::io::Error| Error::Internal(format!("cannot start the HTTP engine: {e}"));
    let addr = listener.local_addr().map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let max_connections = effective_cap(limits.max_connections, reserved_fds);
    if max_connections < limits.max_connections {
        eprintln!(
            "connections: at most {max_connections} open at once (max_connections = {} \
             exceeds what the open-files limit allows; raise it, e.g. LimitNOFILE=)",
            limits.max_connections
        );
    }
    let settings = Settings {
        max_connections,
        header_timeout: Duration::from_secs(limits.header_timeout_secs),
        body_timeout: Duration::from_secs(limits.body_timeout_secs),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(fail)?;
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let hooks = Arc::new(hooks);
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async {
                    let local = tokio::task::LocalSet::new();
                    local
                        .run_until(run(listener, settings, queue, hooks.clone(), stopped))
                        .await
                })
            }));
            match ran {
                Ok(Ok(())) => {}
                Ok(Err(why)) => (hooks.failed)(why),
                Err(_) => (hooks.failed)("the HTTP engine's thread panicked".into()),
            }
        })
        .map_err(fail)?;
    Ok(Engine {
        addr,
        max_connections,
        stop: Some(stop),
        thread: Some(thread),
    })
}

#[derive(Clone, Copy)]
struct Settings {
    max_connections: usize,
    header_timeout: Duration,
    body_timeout: Duration,
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// A request is being read, worked on or answered.
    busy: bool,
    /// When the last request ended (or the connection opened).
    idle_since: Instant,
    /// Closes the connection at once (eviction).
    evict: Rc<Notify>,
    /// Finishes the request in progress, then closes (shutdown).
    wind_down: Rc<Notify>,
}

/// Everything the connection tasks share, on the I/O thread.
struct Shared {
    settings: Settings,
    queue: Arc<Queue>,
    hooks: Arc<Hooks>,
    conns: RefCell<HashMap<u64, Conn>>,
    /// When each kind of trouble was last logged.
    logged: RefCell<HashMap<&'static str, Instant>>,
}

impl Shared {
    /// Logs a line about trouble, at most once per LOG_EVERY per kind.
    fn warn(&self, kind: &'static str, line: String) {
        let now = Instant::now();
        let mut logged = self.logged.borrow_mut();
        if logged
            .get(kind)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return;
        }
        logged.insert(kind, now);
        let _ = std::io::stderr()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
    }

    /// Closes the connection idle for longest; false if all are busy.
    fn evict_idle(&self) -> bool {
        let conns = self.conns.borrow();
        let victim = conns
            .values()
            .filter(|c| !c.busy)
            .min_by_key(|c| c.idle_since);
        match victim {
            Some(c) => {
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(c) = self.conns.borrow_mut().get_mut(&id) {
            c.busy = busy;
            if !busy {
                c.idle_since = Instant::now();
            }
        }
    }
}

async fn run(
    listener: std::net::TcpListener,
    settings: Settings,
    queue: Arc<Queue>,
    hooks: Arc<Hooks>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let shared = Rc::new(Shared {
        settings,
        queue,
        hooks,
        conns: RefCell::new(HashMap::new()),
        logged: RefCell::new(HashMap::new()),
    });
    let mut next_id = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            // Reap finished connection tasks as we go.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if out_of_descriptors(&e) => {
                shared.warn(
                    "fds",
                    format!(
                        "connections: out of file descriptors ({e}); closing an idle \
                         connection (raise the open-files limit, e.g. LimitNOFILE=)"
                    ),
                );
                shared.evict_idle();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            // The peer gave up before we accepted (ECONNABORTED and kin).
            Err(_) => continue,
        };
        let open = shared.conns.borrow().len();
        if open >= settings.max_connections {
            let evicted = shared.evict_idle();
            shared.warn(
                "cap",
                format!(
                    "connections: the cap of {} open connections is reached; {}",
                    settings.max_connections,
                    if evicted {
                        "closing the longest-idle one"
                    } else {
                        "every one is busy, refusing new ones"
                    }
                ),
            );
            if !evicted {
                continue; // dropping `stream` closes it
            }
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let evict = Rc::new(Notify::new());
        let wind_down = Rc::new(Notify::new());
        shared.conns.borrow_mut().insert(
            id,
            Conn {
                busy: false,
                idle_since: Instant::now(),
                evict: evict.clone(),
                wind_down: wind_down.clone(),
            },
        );
        tasks.spawn_local(connection(
            shared.clone(),
            stream,
            peer,
            id,
            evict,
            wind_down,
        ));
    }
    // Shutdown: no new connections; each open one finishes the request it
    // is on (idle ones close at once).
    drop(listener);
    for c in shared.conns.borrow().values() {
        c.wind_down.notify_one();
    }
    let deadline = tokio::time::Instant::now() + GRACE;
    while !tasks.is_empty() {
        if tokio::time::timeout_at(deadline, tasks.join_next())
            .await
            .is_err()
        {
            break;
        }
    }
    tasks.abort_all();
    Ok(())
}

/// EMFILE or ENFILE: the process or the system is out of descriptors.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23) | Some(24))
}

async fn connection(
    shared: Rc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: Rc<Notify>,
    wind_down: Rc<Notify>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.header_timeout)
        .max_header_size(MAX_HEAD)
        .max_buf_size(MAX_BODY.max(MAX_HEAD))
        .keep_alive(true);
    let service = {
        let shared = shared.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, req, peer, id).await) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = evict.notified() => {}
        _ = wind_down.notified() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
    shared.conns.borrow_mut().remove(&id);
}

/// Reads the body, queues the request for a worker and waits for the
/// answer; bad framing is answered here.
async fn handle(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    id: u64,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    shared.set_busy(id, true);
    let (parts, body) = req.into_parts();
    let url = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut request = Request::new(parts.method.as_str(), url);
    request.headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    request.set_peer(peer.ip(), &shared.hooks.trusted_proxies);
    let (route, response, close) = match read_body(body, &parts.headers, shared).await {
        Err(e) => ("unmatched", (shared.hooks.render)(&e), true),
        Ok(bytes) => {
            request.body = bytes;
            let (tx, rx) = oneshot::channel();
            let ip = request.ip.clone();
            let job = Job { request, reply: tx };
            let answer = if shared.queue.push(job) {
                rx.await.ok()
            } else {
                None
            };
            match answer {
                Some((route, response)) => {
                    request_log(shared, &ip, &parts, route, response.status, started);
                    shared.set_busy(id, false);
                    return to_hyper(response, false);
                }
                // The worker panicked past catch_unwind, or shutdown began.
                None => (
                    "unavailable",
                    (shared.hooks.render)(&Error::Internal("no worker answered".into())),
                    true,
                ),
            }
        }
    };
    let ip = request_ip(&parts.headers, peer, shared);
    request_log(shared, &ip, &parts, route, response.status, started);
    shared.set_busy(id, false);
    to_hyper(response, close)
}

/// The client address for a request whose body was refused.
fn request_ip(headers: &hyper::HeaderMap, peer: SocketAddr, shared: &Shared) -> String {
    let mut r = Request {
        headers: headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| {
                (
                    "x-forwarded-for".to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        ..Request::default()
    };
    r.set_peer(peer.ip(), &shared.hooks.trusted_proxies);
    r.ip
}

fn request_log(
    shared: &Shared,
    ip: &str,
    parts: &hyper::http::request::Parts,
    route: &'static str,
    status: u16,
    started: Instant,
) {
    (shared.hooks.served)(&Served {
        ip,
        method: parts.method.as_str(),
        path: log_path(parts.uri.path()),
        status,
        route,
        elapsed: started.elapsed(),
    });
}

/// The path for the log: at most 200 bytes (a 100 KB path is an attack,
/// not a record), cut at a character boundary.
pub fn log_path(path: &str) -> &str {
    const MAX: usize = 200;
    if path.len() <= MAX {
        return path;
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The whole body, at most MAX_BODY bytes, within the body deadline.
async fn read_body(
    body: Incoming,
    headers: &hyper::HeaderMap,
    shared: &Shared,
) -> Result<Vec<u8>, Error> {
    if body.is_end_stream() {
        return Ok(Vec::new());
    }
    // A declared length over the cap is refused before a byte is read.
    // (hyper has already refused a malformed or repeated-and-different one.)
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Error::PayloadTooLarge);
    }
    let collected = tokio::time::timeout(
        shared.settings.body_timeout,
        Limited::new(body, MAX_BODY).collect(),
    )
    .await;
    match collected {
        Err(_) => Err(Error::RequestTimeout),
        Ok(Ok(c)) => Ok(c.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge),
        Ok(Err(_)) => Err(Error::BadRequest(
            "The request body could not be read".into(),
        )),
    }
}

/// Our response as hyper's. A header a handler built with a CR, LF or
/// other byte not allowed in a header is dropped, never sent.
fn to_hyper(resp: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    use hyper::header::{CACHE_CONTROL, CONNECTION, X_CONTENT_TYPE_OPTIONS};
    let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (k, v) in &resp.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(name, value);
        }
    }
    // Token responses must not be cached (RFC 6749 §5.1); nothing else we
    // serve needs to be either, unless a handler said otherwise.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// The cap on open connections, lowered so that connections can never
/// take the descriptors SQLite and the server itself need.
fn effective_cap(configured: usize, reserved_fds: usize) -> usize {
    match open_files_limit() {
        Some(limit) => configured
            .min(limit.saturating_sub(reserved_fds + SPARE_FDS))
            .max(1),
        None => configured,
    }
}

/// The soft open-files limit, read from /proc (Linux; None elsewhere).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_for_the_log_at_a_character_boundary() {
        assert_eq!(log_path("/auth/me"), "/auth/me");
        let long = format!("/{}", "é".repeat(150));
        let cut = log_path(&long);
        assert!(cut.len() <= 200 && long.starts_with(cut));
    }

    #[test]
    fn the_cap_leaves_descriptors_for_the_server() {
        let limit = open_files_limit().unwrap();
        assert!(effective_cap(usize::MAX, 10) <= limit.saturating_sub(42).max(1));
        assert_eq!(effective_cap(5, 10), 5.min(limit.saturating_sub(42)).max(1));
    }

    #[test]
    fn a_closed_queue_drains_then_ends() {
        let q = Queue::default();
        let (tx, _rx) = oneshot::channel();
        assert!(q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx,
        }));
        q.close();
        assert!(q.pop().is_some());
        assert!(q.pop().is_none());
        let (tx, _rx) = oneshot::channel();
        assert!(!q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx,
        }));
    }
}
