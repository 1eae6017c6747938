//! Model threads: each one a CPU with its own store buffer.

use std::sync::{Arc, Mutex};

use crate::exec;

/// A spawned model thread, to wait for.
pub struct JoinHandle<T> {
    cpu: usize,
    result: Arc<Mutex<Option<T>>>,
}

/// Spawns a CPU running `f` (only from the model's first thread, `cpu0`).
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (e, me) = exec::current().expect("tso::thread::spawn outside tso::model");
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let cpu = e.spawn(
        me,
        Box::new(move || {
            let v = f();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        }),
    );
    JoinHandle { cpu, result }
}

impl<T> JoinHandle<T> {
    /// Waits until the thread has finished; its result. (A panic in a model thread ends
    /// the whole check, so this never returns `Err`: the type is std's for loom's sake.)
    pub fn join(self) -> std::thread::Result<T> {
        let (e, me) = exec::current().expect("JoinHandle::join outside tso::model");
        e.join(me, self.cpu);
        let v = self.result.lock().unwrap_or_else(|e| e.into_inner()).take();
        // None only while the execution unwinds (it is over): nothing to return.
        v.ok_or_else(|| Box::new("tso: the execution ended") as Box<dyn std::any::Any + Send>)
    }

    /// The CPU number of the thread (`cpu1`, ... in traces).
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}
