//! The hand-over between the I/O thread and the workers: complete
//! requests as `Job`s in a bounded FIFO, each with the one-shot channel its
//! answer goes back through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use crate::http::{Request, Response};

/// A worker's answer, as the I/O thread receives it.
pub(super) struct Answer {
    /// The matched route pattern (metrics).
    pub route: &'static str,
    pub response: Response,
    /// The user the request's bearer proved, if a handler checked one.
    pub user: Option<String>,
}

/// A complete request waiting for a worker, and where its answer goes.
pub struct Job {
    /// The request, body included.
    pub request: Request,
    pub(super) reply: oneshot::Sender<Answer>,
    /// Set when a worker takes it: from then on its connection is not
    /// evicted (a queued job's connection may be, dropping the job).
    pub(super) taken: Arc<AtomicBool>,
}

impl Job {
    /// True when the client has gone (or its request was given up): the
    /// worker skips it.
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Sends the answer (with the route name for metrics and the user
    /// the handler proved, for the access log) back to the connection. A
    /// client that has gone meanwhile is no error.
    pub fn answer(self, route: &'static str, response: Response) {
        let _ = self.reply.send(Answer {
            route,
            response,
            user: self.request.user.into_inner(),
        });
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
    pub(super) fn push(&self, job: Job) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
