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
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Notify};

mod queue;
mod request;

pub use queue::{Job, Queue};
pub use request::log_path;

use crate::config::Connections;
use crate::error::Error;
use crate::http::{Response, MAX_BODY};
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
    /// The user id a handler proved from the request's bearer token.
    pub user: Option<&'a str>,
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
    /// Peers whose X-Forwarded-For is believed (addresses and ranges).
    pub trusted_proxies: Vec<crate::config::IpRange>,
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
                    user: None,
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
            async move { Ok::<_, Infallible>(request::handle(shared, req, peer, id).await) }
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
        user: None,
    });
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
    fn the_cap_leaves_descriptors_for_the_server() {
        let limit = open_files_limit().unwrap();
        assert!(effective_cap(usize::MAX, 10) <= limit.saturating_sub(42).max(1));
        assert_eq!(effective_cap(5, 10), 5.min(limit.saturating_sub(42)).max(1));
    }
}
