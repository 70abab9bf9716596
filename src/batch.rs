//! Group commit: concurrent requests that each need a small write share
//! one transaction.
//!
//! A caller queues its job and then either waits for its result or, when
//! no one is leading, leads: it takes every queued job (its own among them)
//! and runs them together on its own connection, in one transaction with a
//! savepoint per job, and hands the results out. A commit costs the same
//! for one job or eight (the WAL frames of the pages they share are written
//! once), so under load the refresh rate is no longer one commit per
//! request. No thread is added, and a job never waits for a batch that
//! started without it to be joined by later ones: it is either in the
//! running batch or in the next.
//!
//! Each job's effects stand or fall alone (its savepoint), and results are
//! only handed out after the commit: a failed commit fails every job of the
//! batch.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::Error;

/// Jobs of type `J` giving results of type `R`.
pub struct Batcher<J, R> {
    state: Mutex<State<J, R>>,
    done: Condvar,
}

struct State<J, R> {
    next_id: u64,
    queue: Vec<(u64, J)>,
    results: HashMap<u64, Result<R, Error>>,
    leading: bool,
}

impl<J, R> Default for Batcher<J, R> {
    fn default() -> Self {
        Batcher {
            state: Mutex::new(State {
                next_id: 0,
                queue: Vec::new(),
                results: HashMap::new(),
                leading: false,
            }),
            done: Condvar::new(),
        }
    }
}

/// Hands out the leader's results, or errors if it unwound before that.
struct Handout<'a, J, R> {
    batcher: &'a Batcher<J, R>,
    /// The leader's own job, whose result it takes itself.
    own: u64,
    ids: Vec<u64>,
    results: Option<Vec<Result<R, Error>>>,
}

impl<J, R> Drop for Handout<'_, J, R> {
    fn drop(&mut self) {
        let mut st = self.batcher.lock();
        st.leading = false;
        let results = self.results.take();
        match results {
            Some(rs) => {
                for (id, r) in self.ids.drain(..).zip(rs) {
                    st.results.insert(id, r);
                }
            }
            None => {
                // The leader is unwinding and will not collect its own.
                for id in self.ids.drain(..).filter(|id| *id != self.own) {
                    st.results
                        .insert(id, Err(Error::Internal("batch leader failed".into())));
                }
            }
        }
        drop(st);
        self.batcher.done.notify_all();
    }
}

impl<J, R> Batcher<J, R> {
    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // Nothing in the state is left half-changed by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job`: alone or with others, through some caller's `lead`.
    /// `lead` gets the jobs of a batch and must return one result per job,
    /// in order; it is called at most once, and only by this caller.
    pub fn run(
        &self,
        job: J,
        lead: impl FnOnce(Vec<J>) -> Result<Vec<Result<R, Error>>, Error>,
    ) -> Result<R, Error> {
        let mut lead = Some(lead);
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push((id, job));
        loop {
            if let Some(r) = st.results.remove(&id) {
                return r;
            }
            if !st.leading {
                if let Some(lead) = lead.take() {
                    st.leading = true;
                    let (ids, jobs): (Vec<u64>, Vec<J>) =
                        std::mem::take(&mut st.queue).into_iter().unzip();
                    drop(st);
                    let n = ids.len();
                    let mut handout = Handout {
                        batcher: self,
                        own: id,
                        ids,
                        results: None,
                    };
                    handout.results = Some(match lead(jobs) {
                        Ok(rs) if rs.len() == n => rs,
                        Ok(_) => (0..n)
                            .map(|_| Err(Error::Internal("batch result count".into())))
                            .collect(),
                        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
                    });
                    drop(handout);
                    st = self.lock();
                    continue;
                }
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_job_gets_its_own_result_and_batches_form_under_contention() {
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::default());
        let batches = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..16u32)
            .map(|i| {
                let b = b.clone();
                let batches = batches.clone();
                std::thread::spawn(move || {
                    b.run(i, |jobs| {
                        batches.lock().unwrap().push(jobs.len());
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        Ok(jobs
                            .into_iter()
                            .map(|j| {
                                if j == 7 {
                                    Err(Error::TokenInvalid)
                                } else {
                                    Ok(j * 10)
                                }
                            })
                            .collect())
                    })
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let r = h.join().unwrap();
            if i == 7 {
                assert_eq!(r, Err(Error::TokenInvalid));
            } else {
                assert_eq!(r, Ok(i as u32 * 10));
            }
        }
        let sizes = batches.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 16, "each job ran once");
        assert!(sizes.len() < 16, "some jobs shared a batch: {sizes:?}");
    }

    #[test]
    fn a_failed_batch_fails_each_of_its_jobs() {
        let b: Batcher<u32, u32> = Batcher::default();
        let r = b.run(1, |_| Err(Error::Internal("commit failed".into())));
        assert!(matches!(r, Err(Error::Internal(_))));
        // And the batcher is usable afterwards.
        assert_eq!(
            b.run(2, |jobs| Ok(jobs.into_iter().map(Ok).collect())),
            Ok(2)
        );
    }
}
