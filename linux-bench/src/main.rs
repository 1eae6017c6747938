//! `linux-bench`: gatherOS's `bench=tlb` operations done by a Linux process, measured the
//! same way, so both kernels can be compared under the same QEMU settings. It runs as
//! `/init` of a QEMU guest (the host's `cargo run -- bench --os linux` builds the
//! initramfs), reads its options from the kernel command line (`lb.iters=`, `lb.ops=`,
//! `lb.scen=`, `lb.fail=op:scen,...`, which makes those configurations' operation
//! report EAGAIN on every try, to test the failure path, and `lb.symbols=name,...`,
//! which prints `linux-bench: symbols name=yes|no ...` from `/proc/kallsyms`, to see
//! which of the kernel's functions and keys exist), and prints one line per
//! configuration in gatherOS's format ([`bench_spec::Line`]), starting with `linux`
//! instead of `gatherOS`, always `backend=native sync=broadcast walkers=0` (Linux's
//! sync is the broadcast):
//! `linux smp=<n> scen=.. ... levels=.. [collapsed=<ok>/<tried>]`. Option words it
//! cannot read are listed as `linux-bench: ignored <word>`.
//!
//! As `/init` it prints on the first serial port (`/dev/ttyS0`, the host's stdout) and
//! the kernel's console is the second (`console=ttyS1`, a file on the host): no kernel
//! message (an RCU-stall or soft-lockup report, a timer warning on a slow host) can
//! land inside a result line, and none is taken for one. At the end it hands its
//! verdict to QEMU and waits there to be stopped (it never returns: `/init` exiting
//! would panic the kernel).
//!
//! A transient errno of the operation (EAGAIN, EBUSY, EINTR: `madvise(MADV_COLLAPSE)`
//! returns EAGAIN now and then on newer kernels) is data: the call is tried again, up to
//! [`TRIES`] times per iteration, and `collapsed=<ok>/<tried>` counts the calls that
//! succeeded and those made (always on collapse lines; on others only when a call
//! failed). Time and IPI counts of an iteration cover all its tries. A configuration
//! fails outright on any other errno, or when no try succeeded: it prints
//! `linux-bench: config-failed op=.. scen=.. pages=.. tables=.. errno=.. reason=".."`,
//! the program goes on with the next one and at the end reports failure to QEMU.
//!
//! Each configuration runs in a fresh process pinned to CPU 0 (so in scenario B no other
//! CPU ever held its address space). Time: the TSC and the monotonic clock around the
//! system call alone. IPIs: `/proc/interrupts` `TLB` and `CAL` rows read just before and
//! after it, summed over CPUs; Linux has no separate count of table-sync IPIs, so
//! `sync_ipis_per_op` is `CAL - TLB` (function-call interrupts that were not flushes).
//! `pt_freed_kb`: the drop of `VmPTE`.
//!
//! Operations: `unmap` (munmap; P = 512 and 1 with a separate mapping 4 MiB above that
//! keeps the PMD table, so one PTE table is freed; P = 510 with the last page a separate
//! mapping, so none is); `collapse` (`madvise(MADV_COLLAPSE)` of a fully populated 2 MiB
//! region); `unshare` (munmap of a 1 GiB hugetlb mapping whose PMD table is shared with
//! another process). `unmap-nobatch` has no Linux counterpart (the table batch allocation
//! cannot be made to fail from user space) and is skipped with a message.

mod counters;
mod scenario;
mod sys;

use std::time::Instant;

use bench_spec::{Apic, Backend, Collapsed, Config, Line, Op, Os, PerOp, Scenario, Sync};
use counters::Counters;
use scenario::Threads;

const BASE: u64 = 0x4000_0000;
const HUGE: u64 = 2 << 20;
/// Where the measured process maps the shared hugetlb file (1 GiB aligned, 1 GiB long:
/// only mappings covering a whole PUD range can share PMD tables).
const SHARED: u64 = 0x80_0000_0000;
const GIB: u64 = 1 << 30;
/// Calls of the operation per iteration at most, while it fails with a transient errno.
const TRIES: u32 = 5;

struct Options {
    iters: usize,
    /// Operations by name (those without a Linux counterpart are skipped with a note).
    ops: Vec<String>,
    scenarios: Vec<Scenario>,
    /// Configurations (op, scenario) whose operation is made to fail (`lb.fail=`).
    fail: Vec<(Op, Scenario)>,
    /// Kernel symbols to look up (`lb.symbols=`).
    symbols: Vec<String>,
    /// Words of `lb.scen=` and `lb.fail=` that name no scenario or operation.
    ignored: Vec<String>,
}

/// Whether Linux has the operation: the table batch's allocation cannot be made to fail
/// from user space, so `unmap-nobatch` has no counterpart.
fn on_linux(op: Op) -> bool {
    match op {
        Op::UnmapNobatch => false,
        Op::Unmap | Op::Collapse | Op::Unshare => true,
    }
}

/// For the operations [`on_linux`] refuses, which `main` skips before measuring.
fn not_on_linux() -> ! {
    unreachable!("unmap-nobatch has no Linux counterpart and is skipped")
}

fn options(cmdline: &str) -> Options {
    let mut o = Options {
        iters: bench_spec::DEFAULT_ITERS,
        ops: Op::ALL
            .iter()
            .filter(|&&op| on_linux(op))
            .map(|op| op.name().to_string())
            .collect(),
        scenarios: Scenario::ALL.to_vec(),
        fail: Vec::new(),
        symbols: Vec::new(),
        ignored: Vec::new(),
    };
    for w in cmdline.split_whitespace() {
        match w.split_once('=') {
            Some(("lb.iters", v)) => o.iters = v.parse().unwrap_or(o.iters).max(1),
            Some(("lb.ops", v)) => o.ops = v.split(',').map(String::from).collect(),
            Some(("lb.scen", v)) => {
                o.scenarios.clear();
                for w in v.split(',') {
                    match Scenario::parse(w) {
                        Some(s) => o.scenarios.push(s),
                        None => o.ignored.push(format!("lb.scen={w}")),
                    }
                }
            }
            Some(("lb.symbols", v)) => o.symbols = v.split(',').map(String::from).collect(),
            Some(("lb.fail", v)) => {
                o.fail.clear();
                for w in v.split(',').filter(|w| !w.is_empty()) {
                    let pair = w.split_once(':');
                    match pair.and_then(|(op, s)| Some((Op::parse(op)?, Scenario::parse(s)?))) {
                        Some(p) => o.fail.push(p),
                        None => o.ignored.push(format!("lb.fail={w}")),
                    }
                }
            }
            _ => {}
        }
    }
    o
}

/// The other process holding the shared hugetlb mapping (its PMD table is the one shared).
struct Owner {
    pid: i32,
    fd: i32,
}

impl Owner {
    fn start() -> Self {
        let fd = sys::hugetlb_memfd(GIB);
        let mut pipe = [0i32; 2];
        // SAFETY: a two-element array for the two ends.
        if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
            sys::die("pipe");
        }
        // SAFETY: the process has one thread here (scenario threads start later).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            sys::die("fork");
        }
        if pid == 0 {
            sys::map_at(SHARED, GIB, libc::MAP_SHARED | libc::MAP_NORESERVE, fd);
            sys::touch(SHARED, 1);
            // SAFETY: writes one byte from a live buffer, then waits to be killed.
            unsafe {
                libc::write(pipe[1], [1u8].as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = [0u8];
        // SAFETY: reads one byte into a live buffer.
        if unsafe { libc::read(pipe[0], b.as_mut_ptr().cast(), 1) } != 1 {
            sys::die("owner of the shared mapping did not start");
        }
        Self { pid, fd }
    }

    fn stop(self) {
        // SAFETY: our child; reaped right after.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            libc::close(self.fd);
        }
    }
}

fn setup(cfg: Config, fd: i32) {
    match cfg.op {
        Op::Unmap if cfg.keeps_table() => {
            sys::map_anon(BASE, 511 * 4096);
            sys::touch(BASE, cfg.pages);
        }
        Op::Unmap | Op::Collapse => {
            sys::map_anon(BASE, HUGE);
            sys::touch(BASE, cfg.pages);
        }
        Op::UnmapNobatch => not_on_linux(),
        Op::Unshare => {
            sys::map_at(SHARED, GIB, libc::MAP_SHARED | libc::MAP_NORESERVE, fd);
            // The fault finds the owner's PMD table for this range and shares it.
            sys::touch(SHARED, 1);
        }
    }
}

/// The measured call; errno on failure (`fail`: report EAGAIN after the call).
fn op(cfg: Config, fail: bool) -> Result<(), i32> {
    match cfg.op {
        Op::Unmap if cfg.keeps_table() => sys::try_unmap(BASE, 511 * 4096),
        Op::Unmap => sys::try_unmap(BASE, HUGE),
        Op::Collapse => sys::collapse(BASE, HUGE),
        Op::Unshare => sys::try_unmap(SHARED, GIB),
        Op::UnmapNobatch => not_on_linux(),
    }
    .and(if fail { Err(libc::EAGAIN) } else { Ok(()) })
}

/// The operation's system call, for messages.
fn call_name(cfg: Config) -> &'static str {
    match cfg.op {
        Op::Collapse => "madvise(MADV_COLLAPSE)",
        Op::Unmap | Op::Unshare => "munmap",
        Op::UnmapNobatch => not_on_linux(),
    }
}

fn cleanup(cfg: Config) {
    if cfg.op == Op::Collapse {
        sys::unmap(BASE, HUGE);
    }
}

/// The `p`-th percentile of samples measured in a configuration (there is at least one).
fn at(sorted: &[u64], p: usize) -> u64 {
    bench_spec::percentile(sorted, p).expect("at least one iteration")
}

/// Measures one configuration (in a fresh process) and prints its line, or its
/// `config-failed` line (through [`sys::fail`]).
fn measure(cfg: Config, iters: usize, cpus: usize, machine: &Machine, fail: bool) {
    let owner = (cfg.op == Op::Unshare).then(Owner::start);
    match cfg.op {
        // A separate mapping 4 MiB above keeps the PMD table: the unmap frees one PTE table.
        Op::Unmap if !cfg.keeps_table() => drop(sys::map_anon(BASE + (4 << 20), 4096)),
        // The region's last page, mapped separately (shared, so the two mappings do not
        // merge): the PTE table stays.
        Op::Unmap => {
            sys::map_at(
                BASE + 511 * 4096,
                4096,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
            );
            sys::touch(BASE + 511 * 4096, 1);
        }
        Op::Collapse | Op::Unshare => {}
        Op::UnmapNobatch => not_on_linux(),
    }
    let scen = Threads::start(cfg.scen, cpus);
    let mut counters = Counters::open().unwrap_or_else(|_| sys::die("open /proc files"));
    let warmup = bench_spec::warmup(iters);
    let (mut cycles, mut nanos) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    let (mut tlb, mut cal, mut pt_kb) = (0u64, 0u64, 0u64);
    let (mut ok, mut tried, mut last_errno) = (0u64, 0u64, 0);
    let fd = owner.as_ref().map_or(-1, |o| o.fd);
    for i in 0..warmup + iters {
        setup(cfg, fd);
        scen.before_op();
        let (ipis0, pte0) = (counters.ipis(), counters.vm_pte_kb());
        let t0 = Instant::now();
        let c0 = sys::rdtsc();
        let (mut calls, mut done) = (0u32, false);
        while !done && calls < TRIES {
            calls += 1;
            match op(cfg, fail) {
                Ok(()) => done = true,
                Err(e) if sys::is_transient(e) => last_errno = e,
                Err(e) => sys::fail(e, call_name(cfg)),
            }
        }
        let c1 = sys::rdtsc();
        let ns = t0.elapsed().as_nanos() as u64;
        let (ipis1, pte1) = (counters.ipis(), counters.vm_pte_kb());
        cleanup(cfg);
        if i >= warmup {
            cycles.push(c1 - c0);
            nanos.push(ns);
            tlb += ipis1.tlb - ipis0.tlb;
            cal += ipis1.cal - ipis0.cal;
            pt_kb += pte0.saturating_sub(pte1);
            ok += u64::from(done);
            tried += u64::from(calls);
        }
    }
    if ok == 0 {
        sys::fail(
            last_errno,
            &format!("{}: no try succeeded ({tried} tries)", call_name(cfg)),
        );
    }
    scen.stop();
    if let Some(o) = owner {
        o.stop();
    }
    cycles.sort_unstable();
    nanos.sort_unstable();
    let line = Line {
        os: Os::Linux,
        smp: cpus,
        config: cfg,
        backend: Backend::Native,
        sync: Sync::Broadcast,
        walkers: 0,
        ns_median: at(&nanos, 50),
        ns_p99: at(&nanos, 99),
        tlb_ipis_per_op: PerOp::of(tlb, iters),
        cal_ipis_per_op: PerOp::of(cal, iters),
        sync_ipis_per_op: PerOp::of(cal.saturating_sub(tlb), iters),
        tsc_median: at(&cycles, 50),
        tsc_p99: at(&cycles, 99),
        iters,
        pt_freed_kb: pt_kb / iters as u64,
        apic: machine.apic,
        levels: machine.levels,
        collapsed: (cfg.op == Op::Collapse || ok != tried).then_some(Collapsed { ok, tried }),
        idle: None,
        cycle_ns_median: None,
        catchups_per_op: None,
        idle_left_per_op: None,
    };
    println!("{line}");
}

/// What the guest runs on.
struct Machine {
    apic: Apic,
    levels: u32,
}

fn machine(cmdline: &str) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let la57 = flags.contains(&"la57") && !cmdline.split_whitespace().any(|w| w == "no5lvl");
    Machine {
        apic: if flags.contains(&"x2apic") {
            Apic::X2apic
        } else {
            Apic::Xapic
        },
        levels: if la57 { 5 } else { 4 },
    }
}

/// Runs `cfg` in a child process pinned to CPU 0 and waits for it; false if the
/// configuration failed (then a `config-failed` line has been printed).
fn run_in_child(cfg: Config, iters: usize, cpus: usize, m: &Machine, fail: bool) -> bool {
    // SAFETY: the parent is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        sys::die("fork");
    }
    if pid == 0 {
        sys::set_context(cfg.to_string());
        measure(cfg, iters, cpus, m, fail);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    if code == Some(0) {
        return true;
    }
    if code != Some(sys::REPORTED) {
        let how = match code {
            Some(c) => format!("exit status {c}"),
            None => format!("signal {}", libc::WTERMSIG(status)),
        };
        println!("linux-bench: config-failed {cfg} errno=0 reason=\"measuring process ended by {how}\"");
    }
    false
}

/// `name=yes|no` for each of `names`: whether a `/proc/kallsyms` text defines it.
fn symbols(kallsyms: &str, names: &[String]) -> String {
    let defined: std::collections::HashSet<&str> = kallsyms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names
        .iter()
        .map(|n| format!("{n}={}", if defined.contains(n.as_str()) { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if std::process::id() == 1 {
        // Before anything is printed: every line of this program goes to its own serial
        // port, away from the kernel's console (see `sys::results_to_own_port`).
        sys::results_to_own_port();
        sys::mount("proc", "/proc");
        sys::mount("sysfs", "/sys");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let o = options(&cmdline);
    // Small pages at fault time (collapse must find a PTE table); MADV_COLLAPSE ignores
    // this setting. Huge pages for the shared hugetlb mapping.
    sys::write_file("/sys/kernel/mm/transparent_hugepage/enabled", "never");
    sys::write_file("/proc/sys/vm/nr_hugepages", "4");
    sys::pin_to(0);
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let m = machine(&cmdline);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "linux-bench: kernel={} cpus={cpus} apic={} levels={} iters={}",
        release.trim(),
        m.apic,
        m.levels,
        o.iters
    );
    if !o.symbols.is_empty() {
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        println!("linux-bench: symbols {}", symbols(&kallsyms, &o.symbols));
    }
    for w in &o.ignored {
        println!("linux-bench: ignored {w}");
    }
    let mut ok = true;
    let ops: Vec<Option<Op>> = o
        .ops
        .iter()
        .map(|n| Op::parse(n).filter(|&op| on_linux(op)))
        .collect();
    let measured: Vec<Op> = ops.iter().flatten().copied().collect();
    let total = Config::count(&measured, &o.scenarios);
    println!("bench: configurations={total} iters={}", o.iters);
    for (name, op) in o.ops.iter().zip(ops) {
        let Some(op) = op else {
            let reason = match Op::parse(name) {
                Some(_) => "no-linux-counterpart",
                None => "unknown-op",
            };
            println!("linux-bench: skip op={name} reason={reason}");
            continue;
        };
        for &scen in &o.scenarios {
            let fail = o.fail.contains(&(op, scen));
            for cfg in Config::matrix(op, scen) {
                ok &= run_in_child(cfg, o.iters, cpus, &m, fail);
            }
        }
    }
    println!("bench: done");
    sys::exit_qemu(ok);
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
