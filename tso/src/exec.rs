//! One execution of a model: the TSO machine (memory, one store buffer per CPU), the
//! model threads (one OS thread per CPU, exactly one running at a time), and the
//! scheduler that takes the choices the [`Explorer`] makes.
//!
//! Hand-over: the running thread runs its code until its next operation that another
//! CPU could tell apart from its neighbours in time (a load, a locked instruction), or
//! until it must wait (a fence or locked instruction with a non-empty buffer, a spin,
//! a join); there it records what it waits to do and calls [`State::decide`], which
//! drains buffers as the explorer chooses until it picks a thread to run (maybe itself).
//! Each thread waits for its turn on a condition variable of its own. The OS threads are
//! kept across the executions of one [`crate::model`] call (a [`Pool`]): thread `i`
//! runs CPU `i` of every execution.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

use crate::Explored;
use crate::cell::Cell;
use crate::explore::{Explorer, Loc, NoStep, Step};
use crate::pool::Pool;

/// Most choice points in one execution: a longer one is reported as a failure (a loop
/// that does not call [`crate::hint::spin_loop`] would otherwise run forever).
pub const MAX_STEPS: usize = 20_000;

/// Most CPUs in a model.
pub const MAX_CPUS: usize = 16;

/// The condition variable the thread running [`explore`] waits on.
const RUNNER: usize = MAX_CPUS;

/// Execution ids (cells remember their location per execution).
static NEXT_EXEC: AtomicU32 = AtomicU32::new(1);

thread_local! {
    /// The execution this OS thread runs a CPU of, and which CPU.
    static CURRENT: RefCell<Option<(Arc<Exec>, usize)>> = const { RefCell::new(None) };
}

/// The execution and CPU of the calling thread (None outside a model).
pub(crate) fn current() -> Option<(Arc<Exec>, usize)> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The thread that called `model`, if the calling thread runs a CPU of a model.
pub(crate) fn owner() -> Option<ThreadId> {
    CURRENT.with(|c| c.borrow().as_ref().map(|(e, _)| e.owner))
}

/// The unwinding payload that ends the other threads of an execution that is over.
struct Over;

/// What a CPU's thread is doing or waits to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Running its code (the one running thread).
    Running,
    /// Spawned, not started.
    Start,
    /// Waits to load `loc`.
    Load(Loc),
    /// Waits to run a locked instruction on `loc` (needs an empty buffer).
    Locked(Loc),
    /// In `mfence`: waits for its buffer to drain.
    Fence,
    /// In a spin loop: waits for a write to memory after the count it saw.
    Spin,
    /// Joining a CPU: waits until it has finished.
    Join(usize),
    /// Its closure has returned.
    Finished,
}

/// One CPU.
struct Cpu {
    pending: Pending,
    /// Stores not yet in memory, oldest first.
    buffer: VecDeque<(Loc, u64)>,
    /// Writes to memory counted when it last left a spin (see [`Pending::Spin`]).
    seen_writes: u64,
}

/// How an execution ended.
#[derive(Debug, Clone)]
enum End {
    /// Every thread finished.
    Done,
    /// Cut short: every way on was explored already.
    Redundant,
    /// A failure: the message and the trace.
    Failed(String),
}

/// The machine and the scheduler's state (behind [`Exec::state`]).
pub(crate) struct State {
    cpus: Vec<Cpu>,
    /// Memory: one value per location.
    mem: Vec<u64>,
    /// Where each location's atomic was made.
    made_at: Vec<&'static Location<'static>>,
    /// Writes to memory so far (drains and locked instructions).
    writes: u64,
    /// The CPU whose thread runs (usize::MAX: none).
    active: usize,
    end: Option<End>,
    trace: Vec<String>,
    explorer: Explorer,
    /// Model threads whose job has not returned yet.
    running: usize,
}

/// One execution.
pub(crate) struct Exec {
    id: u32,
    owner: ThreadId,
    state: Mutex<State>,
    /// One per CPU, and the runner's ([`RUNNER`]).
    turns: [Condvar; MAX_CPUS + 1],
    pool: Arc<Pool>,
}

/// Explores every execution of the model whose first thread runs `body()`.
pub(crate) fn explore(no_reduction: bool, body: impl Fn() -> Box<dyn FnOnce() + Send>) -> Explored {
    let owner = std::thread::current().id();
    let mut explorer = Explorer::default();
    explorer.no_reduction = no_reduction;
    let mut explored = Explored {
        executions: 0,
        redundant: 0,
    };
    let pool = Arc::new(Pool::default());
    loop {
        explorer.begin();
        let exec = Arc::new(Exec {
            id: NEXT_EXEC.fetch_add(1, Ordering::Relaxed),
            owner,
            state: Mutex::new(State {
                cpus: Vec::new(),
                mem: Vec::new(),
                made_at: Vec::new(),
                writes: 0,
                active: 0,
                end: None,
                trace: Vec::new(),
                explorer,
                running: 1,
            }),
            turns: std::array::from_fn(|_| Condvar::new()),
            pool: pool.clone(),
        });
        exec.lock().cpus.push(Cpu::new(Pending::Running));
        {
            let e = exec.clone();
            let f = body();
            pool.run(0, Box::new(move || run_cpu(e, 0, f)));
        }
        // Wait until the execution is over and every model thread's job has returned.
        let (end, back) = {
            let mut st = exec.lock();
            while st.end.is_none() || st.running > 0 {
                st = exec.turns[RUNNER].wait(st).unwrap_or_else(|e| e.into_inner());
            }
            (st.end.clone().expect("ended"), std::mem::take(&mut st.explorer))
        };
        explorer = back;
        match end {
            End::Done => explored.executions += 1,
            End::Redundant => explored.redundant += 1,
            End::Failed(msg) => {
                pool.shut_down();
                panic!(
                    "{msg}\n(after {} executions, {} cut short)",
                    explored.executions, explored.redundant
                )
            }
        }
        if !explorer.advance() {
            pool.shut_down();
            return explored;
        }
    }
}

/// The body of CPU `me`'s OS thread.
fn run_cpu(exec: Arc<Exec>, me: usize, body: Box<dyn FnOnce() + Send>) {
    CURRENT.with(|c| *c.borrow_mut() = Some((exec.clone(), me)));
    let started = {
        let mut st = exec.lock();
        while st.active != me && st.end.is_none() {
            st = exec.turns[me].wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.end.is_none() {
            st.cpus[me].pending = Pending::Running;
            true
        } else {
            false
        }
    };
    if started {
        let got = std::panic::catch_unwind(AssertUnwindSafe(body));
        let mut st = exec.lock();
        match got {
            Ok(()) => {
                st.cpus[me].pending = Pending::Finished;
                if st.end.is_none() {
                    st.log(format!("cpu{me} finishes"));
                    st.decide();
                }
            }
            Err(p) if p.is::<Over>() => {}
            Err(p) => {
                if st.end.is_none() {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "(a panic without a message)".into());
                    st.fail(format!("cpu{me} panicked: {msg}"));
                }
            }
        }
        exec.hand_over(&st);
    }
    CURRENT.with(|c| *c.borrow_mut() = None);
    exec.lock().running -= 1;
    exec.turns[RUNNER].notify_one();
}

impl Cpu {
    fn new(pending: Pending) -> Self {
        Self {
            pending,
            buffer: VecDeque::new(),
            seen_writes: 0,
        }
    }
}

impl Exec {
    /// Wakes whoever moves next: the active thread, or everyone once the execution is
    /// over.
    fn hand_over(&self, st: &State) {
        if st.end.is_some() {
            self.turns.iter().for_each(Condvar::notify_all);
        } else if st.active < MAX_CPUS {
            self.turns[st.active].notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A model thread's panic never happens with the lock held (assertions run
        // outside it), but do not make one failure two.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, for an operation of the running thread; None when the execution is
    /// over and this thread unwinds (an atomic used in a destructor): no effect then.
    fn lock_for_op(&self) -> Option<MutexGuard<'_, State>> {
        let st = self.lock();
        if st.end.is_some() {
            if std::thread::panicking() {
                return None;
            }
            drop(st);
            std::panic::resume_unwind(Box::new(Over));
        }
        Some(st)
    }

    fn loc(&self, st: &mut State, cell: &Cell) -> Loc {
        cell.loc(self.id, |v, at| {
            st.mem.push(v);
            st.made_at.push(at);
            st.mem.len() - 1
        })
    }

    /// Records that CPU `me` waits for `what`, lets the scheduler run whoever it picks,
    /// and returns when it is `me`'s turn again.
    fn wait_turn<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        me: usize,
        what: Pending,
    ) -> MutexGuard<'a, State> {
        st.cpus[me].pending = what;
        st.decide();
        if st.active != me {
            self.hand_over(&st);
        }
        loop {
            if st.end.is_some() {
                drop(st);
                std::panic::resume_unwind(Box::new(Over));
            }
            if st.active == me {
                st.cpus[me].pending = Pending::Running;
                return st;
            }
            st = self.turns[me].wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A load (`mov`) by CPU `me`.
    pub(crate) fn load(&self, me: usize, cell: &Cell, at: &Location<'_>) -> u64 {
        let Some(mut st) = self.lock_for_op() else {
            return 0;
        };
        let loc = self.loc(&mut st, cell);
        let mut st = self.wait_turn(st, me, Pending::Load(loc));
        let (v, from) = match st.cpus[me].buffer.iter().rev().find(|(l, _)| *l == loc) {
            Some(&(_, v)) => (v, "its own store buffer"),
            None => (st.mem[loc], "memory"),
        };
        let name = st.name(loc);
        st.log(format!("cpu{me} load  {name} -> {v:#x} (from {from})  at {at}"));
        v
    }

    /// A plain store (`mov`) by CPU `me`: into its buffer.
    pub(crate) fn store(&self, me: usize, cell: &Cell, v: u64, at: &Location<'_>) {
        let Some(mut st) = self.lock_for_op() else {
            return;
        };
        let loc = self.loc(&mut st, cell);
        st.cpus[me].buffer.push_back((loc, v));
        let name = st.name(loc);
        st.log(format!(
            "cpu{me} store {name} := {v:#x} (into its store buffer)  at {at}"
        ));
    }

    /// A locked instruction by CPU `me`: once its buffer is empty, writes `new(old)` to
    /// memory and returns `old`, in one step.
    pub(crate) fn locked(
        &self,
        me: usize,
        cell: &Cell,
        what: &str,
        new: &mut dyn FnMut(u64) -> u64,
        at: &Location<'_>,
    ) -> u64 {
        let Some(mut st) = self.lock_for_op() else {
            return 0;
        };
        let loc = self.loc(&mut st, cell);
        let mut st = self.wait_turn(st, me, Pending::Locked(loc));
        debug_assert!(st.cpus[me].buffer.is_empty());
        let old = st.mem[loc];
        let v = new(old);
        st.mem[loc] = v;
        st.writes += 1;
        let name = st.name(loc);
        st.log(format!(
            "cpu{me} {what} {name}: {old:#x} -> {v:#x} (locked: its buffer was empty; memory)  at {at}"
        ));
        old
    }

    /// `mfence` by CPU `me`: returns once its buffer has drained.
    pub(crate) fn mfence(&self, me: usize, at: &Location<'_>) {
        let Some(st) = self.lock_for_op() else {
            return;
        };
        let mut st = if st.cpus[me].buffer.is_empty() {
            st
        } else {
            self.wait_turn(st, me, Pending::Fence)
        };
        st.log(format!("cpu{me} mfence (its buffer is empty)  at {at}"));
    }

    /// A fence that emits no instruction (only logged).
    pub(crate) fn no_fence(&self, me: usize, what: &str, at: &Location<'_>) {
        if let Some(mut st) = self.lock_for_op() {
            st.log(format!("cpu{me} {what}: no instruction on x86  at {at}"));
        }
    }

    /// A spin-loop iteration of CPU `me`: returns once some write has reached memory
    /// since its last one.
    pub(crate) fn spin(&self, me: usize) {
        let Some(st) = self.lock_for_op() else {
            return;
        };
        let mut st = self.wait_turn(st, me, Pending::Spin);
        st.cpus[me].seen_writes = st.writes;
        st.log(format!("cpu{me} spins again (memory changed)"));
    }

    /// CPU `me` (cpu0) spawns a CPU running `body`; returns its number.
    pub(crate) fn spawn(self: &Arc<Self>, me: usize, body: Box<dyn FnOnce() + Send>) -> usize {
        assert_eq!(me, 0, "tso: only the model's first thread (cpu0) may spawn");
        let Some(mut st) = self.lock_for_op() else {
            panic!("tso: spawn while the execution ends");
        };
        let t = st.cpus.len();
        assert!(t < MAX_CPUS, "tso: at most {MAX_CPUS} CPUs");
        let mut cpu = Cpu::new(Pending::Start);
        cpu.seen_writes = st.writes;
        st.cpus.push(cpu);
        st.log(format!("cpu{me} spawns cpu{t}"));
        st.running += 1;
        let e = self.clone();
        self.pool.run(t, Box::new(move || run_cpu(e, t, body)));
        t
    }

    /// CPU `me` waits until CPU `t` has finished.
    pub(crate) fn join(&self, me: usize, t: usize) {
        let Some(st) = self.lock_for_op() else {
            return;
        };
        let mut st = if st.cpus[t].pending == Pending::Finished {
            st
        } else {
            self.wait_turn(st, me, Pending::Join(t))
        };
        st.log(format!("cpu{me} joins cpu{t}"));
    }
}

impl State {
    fn name(&self, loc: Loc) -> String {
        format!("x{loc} (made at {})", self.made_at[loc])
    }

    fn log(&mut self, line: String) {
        self.trace.push(line);
    }

    fn fail(&mut self, what: String) {
        let mut msg = format!(
            "tso: {what}\ntrace of the failing execution (cpuN: model thread N; a plain store \
             waits in its CPU's store buffer until a 'drain' writes it to memory):\n"
        );
        for (i, line) in self.trace.iter().enumerate() {
            let _ = writeln!(msg, "  {:>3}. {line}", i + 1);
        }
        for (c, cpu) in self.cpus.iter().enumerate() {
            for &(loc, v) in &cpu.buffer {
                let _ = writeln!(msg, "  still in cpu{c}'s store buffer: x{loc} := {v:#x}");
            }
        }
        self.end = Some(End::Failed(msg));
        self.active = usize::MAX;
    }

    /// Whether CPU `t` can take a step nobody else can tell from another time (start,
    /// leave a fence, a spin or a join): such steps run at once, without a choice.
    fn ready_without_choice(&self, t: usize) -> bool {
        let cpu = &self.cpus[t];
        match cpu.pending {
            Pending::Start => true,
            Pending::Fence => cpu.buffer.is_empty(),
            Pending::Spin => self.writes > cpu.seen_writes,
            Pending::Join(u) => self.cpus[u].pending == Pending::Finished,
            _ => false,
        }
    }

    /// Picks what happens next: drains buffers as the explorer chooses, until it picks a
    /// thread to run ([`State::active`]) or the execution ends.
    fn decide(&mut self) {
        loop {
            if self.cpus.iter().all(|c| c.pending == Pending::Finished) {
                self.end = Some(End::Done);
                self.active = usize::MAX;
                return;
            }
            if let Some(t) = (0..self.cpus.len()).find(|&t| self.ready_without_choice(t)) {
                self.active = t;
                return;
            }
            let mut enabled = Vec::new();
            for (t, cpu) in self.cpus.iter().enumerate() {
                match cpu.pending {
                    Pending::Load(loc) => enabled.push(Step::Run {
                        cpu: t,
                        loc,
                        writes: false,
                    }),
                    Pending::Locked(loc) if cpu.buffer.is_empty() => enabled.push(Step::Run {
                        cpu: t,
                        loc,
                        writes: true,
                    }),
                    _ => {}
                }
                if let Some(&(loc, _)) = cpu.buffer.front() {
                    enabled.push(Step::Drain { cpu: t, loc });
                }
            }
            if enabled.is_empty() {
                let waits: Vec<String> = self
                    .cpus
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.pending != Pending::Finished)
                    .map(|(t, c)| format!("cpu{t} {:?}", c.pending))
                    .collect();
                self.fail(format!(
                    "deadlock: no CPU can move and not all have finished ({})",
                    waits.join(", ")
                ));
                return;
            }
            if self.explorer.depth() >= MAX_STEPS {
                self.fail(format!(
                    "an execution longer than {MAX_STEPS} steps (a loop without \
                     tso::hint::spin_loop?)"
                ));
                return;
            }
            match self.explorer.choose(enabled) {
                Err(NoStep::Redundant) => {
                    self.end = Some(End::Redundant);
                    self.active = usize::MAX;
                    return;
                }
                Err(NoStep::Nondeterministic(why)) => {
                    self.fail(format!(
                        "the model is not deterministic ({why}): its threads must share \
                         nothing but this crate's atomics"
                    ));
                    return;
                }
                Ok(Step::Drain { cpu, .. }) => {
                    let (loc, v) = self.cpus[cpu].buffer.pop_front().expect("a buffered store");
                    self.mem[loc] = v;
                    self.writes += 1;
                    let name = self.name(loc);
                    self.log(format!(
                        "  drain cpu{cpu}'s buffer: {name} := {v:#x} (now in memory)"
                    ));
                }
                Ok(Step::Run { cpu, .. }) => {
                    self.active = cpu;
                    return;
                }
            }
        }
    }
}
