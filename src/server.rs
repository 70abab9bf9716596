//! The running server: the HTTP engine (engine/: one I/O thread), a fixed
//! pool of workers each owning a SQLite connection, one background thread
//! (WAL checkpoints, key reload, rate-bucket saves, expiry sweep) and the
//! mail worker (mail/worker.rs: delivers the outbox off the request path).
//!
//! With `[metrics] listen`, a second engine on that address serves only
//! `/metrics` and `/healthz`, answered by a worker of its own, so that a
//! scraper never takes a turn from a sign-in (nor a sign-in from it).
//!
//! The engine hands workers only complete requests, so a worker never
//! waits on a client. Shutdown stops the engine first (no new requests;
//! those in progress are answered), then closes the queue: each worker
//! finishes what is queued and leaves its loop.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{self, Dialect};
use crate::app::{load_master_key, App, Ctx};
use crate::clock::Clock;
use crate::config::{AccessLog, Config};
use crate::db;
use crate::engine::{self, Engine, Hooks, Queue, Served};
use crate::error::Error;
use crate::jwt::{self, KeySet, KeySource};
use crate::limits::HashGate;
use crate::log;
use crate::{accounts, mail, password, sessions};

/// A server that is running.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The metrics listener's bound address, with `[metrics] listen`.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state (tests read the clock and config from it).
    pub app: Arc<App>,
    engine: Engine,
    queue: Arc<Queue>,
    workers: Vec<JoinHandle<()>>,
    background: Option<(Sender<()>, JoinHandle<()>)>,
    mail: Option<mail::worker::Worker>,
    metrics: Option<MetricsListener>,
}

/// The metrics listener: its engine, queue and worker.
struct MetricsListener {
    engine: Engine,
    queue: Arc<Queue>,
    worker: JoinHandle<()>,
}

/// Connections the metrics listener keeps open at most: a few scrapers.
const METRICS_CONNECTIONS: usize = 16;

/// How long retired keys stay published: the longest access-token lifetime
/// any client has, plus the verification leeway.
pub fn key_keep_secs(conn: &rusqlite::Connection, default_access_ttl: i64) -> Result<i64, Error> {
    let max: Option<i64> =
        conn.query_row("SELECT max(access_ttl) FROM clients", [], |r| r.get(0))?;
    Ok(max.unwrap_or(0).max(default_access_ttl) + jwt::LEEWAY)
}

/// What the configuration asks a new signing key to be made from.
pub fn key_source(config: &Config) -> Result<KeySource, Error> {
    Ok(match (&config.algorithm, &config.rsa_key_file) {
        (jwt::Alg::Rs256, Some(path)) => KeySource::Rsa(jwt::read_rsa_key(path)?),
        (alg, _) => KeySource::Generate(*alg),
    })
}

/// Opens the store, makes sure a signing key exists, binds, and starts the
/// workers and the background thread.
pub fn serve(config: Config, clock: Clock) -> Result<Running, Error> {
    let now = clock.now();
    // A template that does not parse stops the start, before anything
    // listens (check-config runs the same check).
    let templates = mail::Templates::load(config.mail_templates.as_deref())?;
    // So does a logo that cannot be read, is too big or is no image.
    let logo = match &config.web_logo {
        Some(path) => Some(crate::web::pages::Logo::load(path)?),
        None => None,
    };
    // Bound before any file is made: a busy port leaves no new database
    // or key file behind.
    let listener = listen(&config.listen)?;
    let mut conn = db::open_and_migrate(&config.db)?;
    let master = load_master_key(&config)?;
    let keep = key_keep_secs(&conn, config.access_ttl)?;
    jwt::ensure_current(&mut conn, &master, &key_source(&config)?, keep, now)?;
    let keys = KeySet::load(&conn, &master, now)?;

    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let metrics_listener = match &config.metrics.listen {
        Some(a) => Some(listen(a)?),
        None => None,
    };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let issuer = config.issuer.clone().unwrap_or_else(|| public_url.clone());

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // A quarter of the workers (at least one) never hash, whatever the
    // login load, so refresh and /auth/me always find a worker; of the
    // rest, `cores` hash and the others may queue for a permit.
    let reserved = (config.workers / 4).max(1);
    let hashing = cores.min(config.workers.saturating_sub(reserved).max(1));
    let waiting = config
        .workers
        .saturating_sub(reserved)
        .saturating_sub(hashing);
    let gate = HashGate::new(hashing, waiting, Duration::from_secs(5));
    let dummy = password::dummy_hash(config.pbkdf2_iterations)?;
    let mut app = App::new(
        config, clock, public_url, issuer, master, keys, gate, dummy, templates,
    );
    app.logo = logo;
    let app = Arc::new(app);
    app.limiter.load(&conn)?;

    // Each SQLite connection holds up to three descriptors (database,
    // WAL, shared memory): the workers' and the background thread's; and
    // the metrics listener's worker, socket and connections.
    let mut reserved_fds = 3 * (app.config.workers + 1);
    if metrics_listener.is_some() {
        reserved_fds += 3 + 1 + METRICS_CONNECTIONS;
    }
    // At most one request per open connection waits for a worker.
    let queue = Arc::new(Queue::new(engine::connection_cap(
        &app.config.connections,
        reserved_fds,
    )));
    let mut workers = Vec::new();
    for i in 0..app.config.workers {
        let conn = db::open(&app.config.db)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let cx = Ctx {
            conn,
            app: app.clone(),
        };
        let queue = queue.clone();
        let tables = api::dialects(&|d| app.config.dialect_on(d));
        let handle = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || work(cx, &queue, &tables))
            .map_err(|e| Error::Internal(format!("cannot start a worker: {e}")))?;
        workers.push(handle);
    }

    let engine = engine::start(
        listener,
        &app.config.connections,
        reserved_fds,
        queue.clone(),
        hooks(&app),
    )?;

    let metrics = match metrics_listener {
        Some(l) => Some(start_metrics_listener(&app, l)?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|m| m.engine.addr);
    if let Some(a) = metrics_addr {
        app.log.line(format!(
            "metrics: listening on http://{a} (/metrics, /healthz)"
        ));
    }

    let (stop, stopped) = channel::<()>();
    let mut bg = Ctx {
        conn,
        app: app.clone(),
    };
    let background = std::thread::Builder::new()
        .name("background".into())
        .spawn(move || {
            let mut tick = 0u64;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(1))
            {
                tick += 1;
                if let Err(e) = background_tick(&mut bg, tick) {
                    bg.app.log.line(format!("background: {e}"));
                }
            }
            let now = bg.now();
            if let Err(e) = bg.app.limiter.save(&mut bg.conn, now) {
                bg.app
                    .log
                    .line(format!("background: saving rate limits: {e}"));
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the background thread: {e}")))?;

    let mail = mail::worker::start(app.clone())?;

    Ok(Running {
        addr,
        metrics_addr,
        app,
        engine,
        queue,
        workers,
        background: Some((stop, background)),
        mail: Some(mail),
        metrics,
    })
}

/// Starts the metrics listener's worker (its own SQLite connection, for
/// /healthz) and engine, on the shared hooks: its requests are counted and
/// logged like any other.
fn start_metrics_listener(
    app: &Arc<App>,
    listener: std::net::TcpListener,
) -> Result<MetricsListener, Error> {
    let limits = crate::config::Connections {
        max_connections: METRICS_CONNECTIONS,
        ..app.config.connections.clone()
    };
    let queue = Arc::new(Queue::new(METRICS_CONNECTIONS));
    let conn = db::open(&app.config.db)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let cx = Ctx {
        conn,
        app: app.clone(),
    };
    let tables = vec![Dialect {
        name: "metrics",
        routes: api::meta::metrics_listener_routes(),
        render: api::native::render,
        openapi: Vec::new,
    }];
    let q = queue.clone();
    let worker = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || work(cx, &q, &tables))
        .map_err(|e| Error::Internal(format!("cannot start the metrics worker: {e}")))?;
    let engine = match engine::start(listener, &limits, 0, queue.clone(), hooks(app)) {
        Ok(e) => e,
        Err(e) => {
            queue.close();
            let _ = worker.join();
            return Err(e);
        }
    };
    Ok(MetricsListener {
        engine,
        queue,
        worker,
    })
}

/// Binds the listener with SO_REUSEADDR (a restart does not wait for
/// TIME_WAIT), small socket buffers and a deep backlog.
fn listen(addr: &str) -> Result<std::net::TcpListener, Error> {
    use socket2::{Domain, SockAddr, Socket, Type};
    use std::net::ToSocketAddrs;
    let fail = |e: std::io::Error| Error::Internal(format!("cannot listen on {addr}: {e}"));
    let sa = addr
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| Error::Internal(format!("cannot listen on {addr}: no address")))?;
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    // Small kernel buffers, inherited by accepted sockets: a client that
    // pipelines requests and never reads the answers (or sends and never
    // stops) pins at most this much kernel memory, not the megabytes TCP
    // autotuning would grow to per connection. Requests and answers are
    // small; 64 KiB each way is plenty.
    socket.set_send_buffer_size(64 * 1024).map_err(fail)?;
    socket.set_recv_buffer_size(64 * 1024).map_err(fail)?;
    socket.bind(&SockAddr::from(sa)).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    Ok(socket.into())
}

/// One pass of the background thread (every second): checkpoint the WAL;
/// every 5 s pick up keys rotated by the CLI and save the rate buckets;
/// every minute sweep expired rows.
fn background_tick(bg: &mut Ctx, tick: u64) -> Result<(), Error> {
    let now = bg.now();
    // Workers never checkpoint (a checkpoint inside a request would stall
    // it and every writer queued behind it); this thread does, every
    // second, without blocking readers or writers.
    bg.conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    if tick.is_multiple_of(5) {
        let fresh = KeySet::load(&bg.conn, &bg.app.master, now)?;
        if fresh.stamp != bg.app.keys()?.stamp {
            bg.app.set_keys(fresh);
        }
        bg.app.limiter.save(&mut bg.conn, now)?;
    }
    // The browser sessions used in the last second (web/session.rs).
    let seen = bg.app.web_seen.take();
    if !seen.is_empty() {
        bg.write(|tx| crate::web::session::Seen::flush(tx, &seen))?;
    }
    // Login activity past its retention, a batch a second (activity.rs).
    crate::activity::sweep_expired(bg, now)?;
    if tick.is_multiple_of(60) {
        bg.write(|tx| {
            sessions::sweep(tx, now)?;
            crate::totp::sweep(tx, now)?;
            crate::softlock::sweep(tx, now)?;
            crate::social::sweep(tx, now)?;
            crate::web::session::sweep(tx, now)?;
            crate::codes::sweep(tx, now)
        })?;
    }
    Ok(())
}

/// What the engine needs from the server: how to render its own refusals,
/// where each answered request is counted and logged, and whom to tell if
/// the I/O thread dies.
fn hooks(app: &Arc<App>) -> Hooks {
    let served = app.clone();
    let failed = app.clone();
    Hooks {
        log: app.log.clone(),
        render: |e| api::render(api::native::render, e),
        served: Box::new(move |s: &Served| {
            served.metrics.request(s.route, s.status);
            // The path only (queries can carry tokens and codes), cut short
            // by the engine.
            let format = served.config.access_log;
            if format != AccessLog::Off {
                let time = log::timestamp(served.clock.now());
                if let Some(line) = log::access_line(format, &time, s) {
                    served.log.line(line);
                }
            }
        }),
        failed: Box::new(move |why| failed.listener_failed(why)),
        trusted_proxies: app.config.trusted_proxies.clone(),
    }
}

fn work(mut cx: Ctx, queue: &Queue, tables: &[Dialect]) {
    while let Some(job) = queue.pop() {
        // Its client has gone before a worker was free: nothing is done
        // on its behalf (the engine has logged it, 499).
        if job.abandoned() {
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            api::dispatch(&mut cx, tables, &job.request)
        }));
        let (route, resp) = outcome.unwrap_or_else(|_| {
            (
                "panic",
                api::render(
                    api::native::render,
                    &Error::Internal("handler panicked".into()),
                ),
            )
        });
        job.answer(route, resp);
    }
}

impl Running {
    /// Stops accepting, lets every worker finish what it holds, saves the
    /// rate buckets and returns when all threads have ended.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The engine first: it answers what is in progress (the workers
        // still run), then the queue closes and the workers leave.
        self.engine.shutdown();
        self.queue.close();
        if let Some(mut m) = self.metrics.take() {
            m.engine.shutdown();
            m.queue.close();
            let _ = m.worker.join();
        }
        self.app.log.flush();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // After the workers: mail queued by the last requests is in the
        // outbox (delivered after the restart); commands already running
        // are waited for (each bounded by its timeout) and recorded.
        if let Some(m) = self.mail.take() {
            m.stop();
        }
        if let Some((stop, handle)) = self.background.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }

    /// Why the listener stopped accepting connections, if it has: the
    /// server can then only be stopped (and restarted by its supervisor).
    pub fn listener_failed(&self) -> Option<String> {
        self.app.listener_error.lock().ok().and_then(|e| e.clone())
    }

    /// Reloads the signing keys from the database now (the background
    /// thread does this every 5 s; tests and signals need not wait).
    pub fn reload_keys(&self) -> Result<(), Error> {
        let conn = db::open(&self.app.config.db)?;
        let fresh = KeySet::load(&conn, &self.app.master, self.app.clock.now())?;
        self.app.set_keys(fresh);
        Ok(())
    }

    /// A one-line hint when no admin exists yet (printed by `serve`).
    pub fn first_start_hint(&self) -> Option<String> {
        let conn = db::open(&self.app.config.db).ok()?;
        match accounts::has_admin(&conn) {
            Ok(false) => Some(format!(
                "no admin yet: create one with `hallpass user add YOU@EXAMPLE.COM --admin --db {}`",
                self.app.config.db.display()
            )),
            _ => None,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
