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
//!   parsed by hyper; the body is read here, copied into one buffer of at
//!   most [`MAX_BODY`] bytes within the body deadline. Only then is the
//!   request queued for a worker: a worker never waits on a socket.
//! * Workers (server.rs) take [`Job`]s from the [`Queue`] and answer each
//!   through its one-shot channel; the I/O thread writes the answer. A job
//!   whose client has gone is skipped; one a worker already holds is still
//!   logged (status 499).
//! * Bad framing is answered here, without a worker: 400, 408, 413, 431,
//!   each with `Connection: close` when bytes of the request may remain,
//!   and each in the access log with the client's address.
//! * Open connections are capped. At the cap, a new connection closes the
//!   connection that has waited longest without a worker holding its
//!   request (idle, still sending its head or body, or not reading its
//!   answer), so thousands of silent or slow sockets cannot keep out a
//!   client that has something to say. Only if every connection has a
//!   request at a worker is the new one closed. The cap is lowered to what
//!   the open-files limit allows, and running out of descriptors anyway is
//!   survived the same way.
//! * Nothing on this thread blocks: log lines go through log.rs.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Notify};

use crate::config::Connections;
use crate::error::Error;
use crate::http::{Request, Response, MAX_BODY};
use crate::log::Logger;

/// The largest request head (request line and headers) accepted: 431 above.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long shutdown waits for requests in progress.
const GRACE: Duration = Duration::from_secs(10);
/// Descriptors kept free of connections: standard streams, the listener,
/// the runtime's poller, key and config files, a mail command's pipes.
const SPARE_FDS: usize = 32;
/// At most one warning per this much time per kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A complete request waiting for a worker, and where its answer goes.
pub struct Job {
    /// The request, body included.
    pub request: Request,
    reply: oneshot::Sender<(&'static str, Response)>,
    /// Set when a worker takes it: from then on its connection is not
    /// evicted (a queued job's connection may be, dropping the job).
    taken: Arc<AtomicBool>,
}

impl Job {
    /// True when the client has gone (or its request was given up): the
    /// worker skips it.
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Sends the answer (and the route name for metrics) back to the
    /// connection. A client that has gone meanwhile is no error.
    pub fn answer(self, route: &'static str, response: Response) {
        let _ = self.reply.send((route, response));
    }
}

/// The hand-over between the I/O thread and the workers: a bounded FIFO
/// that workers block on.
pub struct Queue {
    state: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    /// A queue holding at most `capacity` jobs.
    pub fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues a job; false when the queue is full or closed (the job is
    /// dropped and the engine answers 429 or 500).
    fn push(&self, job: Job) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.0.len() >= self.capacity {
            // Jobs whose clients have gone hold no place.
            s.0.retain(|j| !j.abandoned());
        }
        if s.1 || s.0.len() >= self.capacity {
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
                job.taken.store(true, Ordering::Release);
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
/// metrics). `path` is the path as sent, without the query, cut short;
/// `-` for method and path when the request could not be parsed.
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
    /// Called once per answered (or abandoned) request, on the I/O
    /// thread: it must not block (log through `log`).
    pub served: Box<dyn Fn(&Served) + Send + Sync>,
    /// Called if the I/O thread ends without being asked to.
    pub failed: Box<dyn Fn(String) + Send + Sync>,
    /// Where the engine's own warnings go.
    pub log: Arc<Logger>,
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
    /// Stops accepting, lets requests at workers finish (at most 10 s),
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

/// The cap on open connections for these limits: lowered so that
/// connections can never take the descriptors SQLite and the server
/// itself need. Size the queue with it.
pub fn connection_cap(limits: &Connections, reserved_fds: usize) -> usize {
    effective_cap(limits.max_connections, reserved_fds)
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
    let max_connections = connection_cap(limits, reserved_fds);
    if max_connections < limits.max_connections {
        hooks.log.line(format!(
            "connections: at most {max_connections} open at once (max_connections = {} \
             exceeds what the open-files limit allows; raise it, e.g. LimitNOFILE=)",
            limits.max_connections
        ));
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
    /// The peer's address: eviction takes from the address holding the
    /// most connections first.
    ip: IpAddr,
    /// Its request is queued for a worker (`taken` once a worker runs it:
    /// then the connection is not evictable).
    at_worker: Option<Arc<AtomicBool>>,
    /// Since when it has waited without a worker: opened, last answered,
    /// or its request's head arrived. The longest-waiting goes first.
    since: Instant,
    /// Requests answered on it.
    answered: u32,
    /// Closes the connection at once (eviction).
    evict: Rc<Notify>,
    /// Finishes the request at a worker, then closes (shutdown).
    wind_down: Rc<Notify>,
}

/// Everything the connection tasks share, on the I/O thread.
struct Shared {
    settings: Settings,
    queue: Arc<Queue>,
    hooks: Arc<Hooks>,
    conns: RefCell<HashMap<u64, Conn>>,
    /// When each kind of trouble was last logged.
    warned: RefCell<HashMap<&'static str, Instant>>,
}

impl Shared {
    /// Logs a warning, at most once per LOG_EVERY per kind.
    fn warn(&self, kind: &'static str, line: String) {
        let now = Instant::now();
        let mut warned = self.warned.borrow_mut();
        if warned
            .get(kind)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return;
        }
        warned.insert(kind, now);
        self.hooks.log.line(line);
    }

    /// Closes a connection that no worker is running a request for, and
    /// forgets it at once (so a burst of accepts evicts one each): from the
    /// address holding the most such connections, the one that has waited
    /// longest. One address flooding the server thus mostly evicts its own
    /// connections. False if a worker runs a request for every connection.
    fn evict_one(&self) -> bool {
        let mut conns = self.conns.borrow_mut();
        let evictable = |c: &Conn| {
            c.at_worker
                .as_ref()
                .is_none_or(|taken| !taken.load(Ordering::Acquire))
        };
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for c in conns.values().filter(|c| evictable(c)) {
            *per_ip.entry(c.ip).or_default() += 1;
        }
        let busiest = per_ip.into_iter().max_by_key(|(_, n)| *n).map(|(ip, _)| ip);
        let victim = conns
            .iter()
            .filter(|(_, c)| evictable(c) && Some(c.ip) == busiest)
            .min_by_key(|(_, c)| c.since)
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Conn)) {
        if let Some(c) = self.conns.borrow_mut().get_mut(&id) {
            f(c);
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
        warned: RefCell::new(HashMap::new()),
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
                        "connections: out of file descriptors ({e}); closing the longest-waiting \
                         connection (raise the open-files limit, e.g. LimitNOFILE=)"
                    ),
                );
                if shared.evict_one() {
                    // Let the evicted task run and close its socket.
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            // The peer gave up before we accepted (ECONNABORTED and kin).
            Err(_) => continue,
        };
        let open = shared.conns.borrow().len();
        if open >= settings.max_connections {
            if shared.evict_one() {
                shared.warn(
                    "cap",
                    format!(
                        "connections: the cap of {} open connections is reached; closing \
                         the longest-waiting one of the busiest address for each new one",
                        settings.max_connections
                    ),
                );
                tokio::task::yield_now().await;
            } else {
                shared.warn(
                    "full",
                    format!(
                        "connections: the cap of {} open connections is reached and a worker \
                         runs a request for each; refusing new ones with 503",
                        settings.max_connections
                    ),
                );
                // Best effort, never waiting: the socket's buffer is empty.
                let _ = stream.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
                (shared.hooks.served)(&Served {
                    ip: &peer.ip().to_canonical().to_string(),
                    method: "-",
                    path: "-",
                    status: 503,
                    route: "refused",
                    elapsed: Duration::ZERO,
                });
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
                ip: peer.ip().to_canonical(),
                at_worker: None,
                since: Instant::now(),
                answered: 0,
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
    // Shutdown: no new connections; a request at a worker is answered,
    // then its connection closes; every other connection closes now.
    drop(listener);
    for c in shared.conns.borrow().values() {
        if c.at_worker.is_some() {
            c.wind_down.notify_one();
        } else {
            c.evict.notify_one();
        }
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

/// Forgets a connection when its task ends, however it ends.
struct Registered {
    shared: Rc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.shared.conns.try_borrow_mut() {
            conns.remove(&self.id);
        }
    }
}

async fn connection(
    shared: Rc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: Rc<Notify>,
    wind_down: Rc<Notify>,
) {
    let _registered = Registered {
        shared: shared.clone(),
        id,
    };
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
            async move { Ok::<_, Infallible>(handle(shared, req, peer, id).await) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Eviction first: once chosen, a connection starts no new request.
    let ended = tokio::select! {
        biased;
        _ = evict.notified() => None,
        _ = wind_down.notified() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await.err()
        }
        r = conn.as_mut() => r.err(),
    };
    // Refusals hyper makes before a request exists still reach the log.
    let Some(e) = ended else { return };
    let answered = shared.conns.borrow().get(&id).map_or(0, |c| c.answered);
    let status = if e.is_parse_too_large() {
        431
    } else if e.is_parse() {
        400
    } else if e.is_timeout() && answered == 0 {
        // A head that never completed (an idle kept-alive connection
        // timing out after its requests is no news).
        408
    } else {
        return;
    };
    let ip = peer.ip().to_canonical().to_string();
    (shared.hooks.served)(&Served {
        ip: &ip,
        method: "-",
        path: "-",
        status,
        route: "unparsed",
        elapsed: Duration::ZERO,
    });
}

/// A request in progress on the I/O thread: logged exactly once, with 499
/// if the client goes (or is evicted) before its answer.
struct InFlight {
    shared: Rc<Shared>,
    id: u64,
    ip: String,
    method: String,
    path: String,
    started: Instant,
    done: bool,
}

impl InFlight {
    fn finish(&mut self, route: &'static str, status: u16) {
        self.done = true;
        self.log(route, status);
        self.shared.update(self.id, |c| {
            c.at_worker = None;
            c.answered += 1;
            c.since = Instant::now();
        });
    }

    fn log(&self, route: &'static str, status: u16) {
        (self.shared.hooks.served)(&Served {
            ip: &self.ip,
            method: &self.method,
            path: &self.path,
            status,
            route,
            elapsed: self.started.elapsed(),
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.log("gone", 499);
        }
    }
}

/// Reads the body, queues the request for a worker and waits for the
/// answer; bad framing is answered here.
async fn handle(
    shared: Rc<Shared>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    id: u64,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    shared.update(id, |c| c.since = started);
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
    let mut flight = InFlight {
        shared: shared.clone(),
        id,
        ip: request.ip.clone(),
        method: parts.method.as_str().to_string(),
        path: log_path(parts.uri.path()).to_string(),
        started,
        done: false,
    };
    let body = match read_body(body, &parts.headers, shared.settings.body_timeout).await {
        Ok(body) => body,
        Err(e) => {
            let response = (shared.hooks.render)(&e);
            flight.finish("unmatched", response.status);
            return to_hyper(response, true);
        }
    };
    request.body = body;
    let (tx, rx) = oneshot::channel();
    let taken = Arc::new(AtomicBool::new(false));
    shared.update(id, |c| c.at_worker = Some(taken.clone()));
    let job = Job {
        request,
        reply: tx,
        taken,
    };
    let answer = if shared.queue.push(job) {
        rx.await
            .map_err(|_| Error::Internal("no worker answered".into()))
    } else {
        // Every worker busy and the queue full: come back in a second.
        Err(Error::RateLimited { retry_after: 1 })
    };
    match answer {
        Ok((route, response)) => {
            flight.finish(route, response.status);
            to_hyper(response, false)
        }
        Err(e) => {
            if let Error::Internal(detail) = &e {
                shared.hooks.log.line(format!("error: {detail}"));
            }
            let response = (shared.hooks.render)(&e);
            flight.finish("unavailable", response.status);
            to_hyper(response, true)
        }
    }
}

/// The path for the log: at most 200 bytes (a 100 KB path is an attack,
/// not a record), cut at a character boundary; `-` when there is none.
pub fn log_path(path: &str) -> &str {
    const MAX: usize = 200;
    if path.is_empty() {
        return "-";
    }
    if path.len() <= MAX {
        return path;
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The whole body, copied into one buffer of at most MAX_BODY bytes (so
/// that thousands of tiny chunks cannot pin thousands of read buffers),
/// within the body deadline.
async fn read_body(
    mut body: Incoming,
    headers: &hyper::HeaderMap,
    deadline: Duration,
) -> Result<Vec<u8>, Error> {
    // hyper refuses a Transfer-Encoding that does not end in chunked; a
    // body chunked twice is refused here (RFC 9112 §7: a sender must not
    // apply chunked more than once).
    let chunked = headers
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter(|c| c.trim().eq_ignore_ascii_case("chunked"))
        .count();
    if chunked > 1 {
        return Err(Error::BadRequest(
            "Transfer-Encoding names chunked more than once".into(),
        ));
    }
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
    let read = async {
        let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|_| Error::BadRequest("The request body could not be read".into()))?;
            // Trailers are read and ignored.
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > MAX_BODY {
                    return Err(Error::PayloadTooLarge);
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(Error::RequestTimeout))
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
    fn a_full_queue_refuses_and_an_abandoned_job_says_so() {
        let q = Queue::new(1);
        let (tx, rx) = oneshot::channel();
        assert!(q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx,
            taken: Arc::default(),
        }));
        let (tx2, _rx2) = oneshot::channel();
        assert!(!q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx2,
            taken: Arc::default(),
        }));
        drop(rx);
        assert!(q.pop().unwrap().abandoned());
    }

    #[test]
    fn headers_with_cr_or_lf_are_never_sent() {
        let r = to_hyper(
            Response::empty(302)
                .with_header("Location", "/a\r\nSet-Cookie: x=1")
                .with_header("X-Ok", "fine"),
            false,
        );
        assert!(r.headers().get("location").is_none());
        assert!(r.headers().get("set-cookie").is_none());
        assert_eq!(r.headers().get("x-ok").unwrap(), "fine");
    }

    #[test]
    fn a_closed_queue_drains_then_ends() {
        let q = Queue::new(4);
        let (tx, _rx) = oneshot::channel();
        assert!(q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx,
            taken: Arc::default(),
        }));
        q.close();
        assert!(q.pop().is_some());
        assert!(q.pop().is_none());
        let (tx, _rx) = oneshot::channel();
        assert!(!q.push(Job {
            request: Request::new("GET", "/"),
            reply: tx,
            taken: Arc::default(),
        }));
    }
}
