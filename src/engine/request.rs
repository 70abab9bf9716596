//! One request on the I/O thread: its body read into one buffer within
//! the deadline, its framing checked, the request queued for a worker, its
//! answer turned into hyper's and logged exactly once.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::oneshot;

use super::queue::Answer;
use super::{Job, Served, Shared};
use crate::error::Error;
use crate::http::{Request, Response, MAX_BODY};

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
    fn finish(&mut self, route: &'static str, status: u16, user: Option<&str>) {
        self.done = true;
        self.log(route, status, user);
        self.shared.update(self.id, |c| {
            c.at_worker = None;
            c.answered += 1;
            c.since = Instant::now();
        });
    }

    fn log(&self, route: &'static str, status: u16, user: Option<&str>) {
        (self.shared.hooks.served)(&Served {
            ip: &self.ip,
            method: &self.method,
            path: &self.path,
            status,
            route,
            elapsed: self.started.elapsed(),
            user,
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.log("gone", 499, None);
        }
    }
}

/// Reads the body, queues the request for a worker and waits for the
/// answer; bad framing is answered here.
pub(super) async fn handle(
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
            flight.finish("unmatched", response.status, None);
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
        Ok(Answer {
            route,
            response,
            user,
        }) => {
            flight.finish(route, response.status, user.as_deref());
            to_hyper(response, false)
        }
        Err(e) => {
            if let Error::Internal(detail) = &e {
                shared.hooks.log.line(format!("error: {detail}"));
            }
            let response = (shared.hooks.render)(&e);
            flight.finish("unavailable", response.status, None);
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
pub(super) fn to_hyper(resp: Response, close: bool) -> hyper::Response<Full<Bytes>> {
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
}
