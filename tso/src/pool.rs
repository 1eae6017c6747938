//! The OS threads that run a model's CPUs, kept across its executions: thread `i` runs
//! CPU `i` of every execution (cheaper than making threads anew for each one).

use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

/// What a model thread runs.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// OS threads kept across the executions of one model (thread `i` runs CPU `i`).
#[derive(Default)]
pub(crate) struct Pool {
    workers: Mutex<Vec<(mpsc::Sender<Job>, JoinHandle<()>)>>,
}

impl Pool {
    /// Runs `job` on thread `i` (made if need be).
    pub(crate) fn run(&self, i: usize, job: Job) {
        let mut w = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        while w.len() <= i {
            let (tx, rx) = mpsc::channel::<Job>();
            let thread = std::thread::spawn(move || rx.into_iter().for_each(|job| job()));
            w.push((tx, thread));
        }
        w[i].0.send(job).expect("a pool thread");
    }

    /// Ends the threads (by the thread that made the pool, once no job runs: a job's
    /// thread may hold the pool last, so this is not `Drop`).
    pub(crate) fn shut_down(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for (jobs, thread) in workers {
            drop(jobs);
            let _ = thread.join();
        }
    }
}
