//! `gatheros`: the host tool behind `cargo run`. Builds the disk images, boots them in
//! QEMU and returns the kernel's verdict as the exit status.

use std::process::ExitCode;
use std::time::Duration;

use boot::image::{self, Firmware};
use boot::qemu::{self, Accel, QemuConfig, Verdict};
use boot::{install, testrun};
use clap::{Args, Parser, Subcommand};

/// Boot gatherOS in QEMU (the default), run its in-kernel tests, or set up this machine.
#[derive(Parser)]
#[command(name = "gatheros", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot gatherOS and return its verdict (what plain `cargo run` does).
    Run(RunArgs),
    /// Run the in-kernel tests in one QEMU configuration.
    Test {
        #[command(flatten)]
        run: RunArgs,
        /// Only tests whose name contains one of these.
        filters: Vec<String>,
    },
    /// Install QEMU >= 8.1 and OVMF if missing (Debian/Ubuntu as root).
    Setup,
    /// Write a boot image to a USB stick (whole-disk block device), with the boot options
    /// baked in; refuses mounted, system, non-removable (without --force) and too-small
    /// devices, asks first (or --yes), verifies by reading back.
    Flash {
        /// The device, e.g. /dev/sdb.
        device: std::path::PathBuf,
        /// Write the UEFI image (default: BIOS).
        #[arg(long, conflicts_with = "bios")]
        uefi: bool,
        /// Write the BIOS image (the default).
        #[arg(long)]
        bios: bool,
        /// Boot options baked into the image.
        #[arg(long, default_value = "")]
        args: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a non-removable disk.
        #[arg(long)]
        force: bool,
    },
    /// Measure unmap/collapse/unshare with IPI and cycle accounting (one boot per CPU
    /// count and backend); prints a table, writes CSV and SVG plots, lists what failed
    /// at the end (and then exits with status 1), keeping everything that was measured.
    Bench {
        // Boxed: the plan is most of the enum's size (clippy's large_enum_variant).
        #[command(flatten)]
        plan: Box<boot::bench::BenchPlan>,
        /// Output directory for bench.csv and the SVG plots (with --shootdown:
        /// shootdown.csv).
        #[arg(long, default_value = "bench-out")]
        out: std::path::PathBuf,
        /// Earlier bench.csv to compare with (ratio of median times per configuration).
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
        /// Earlier bench.csv files whose records join this run's table, ratios, CSV and
        /// plots (say, a Linux run beside a gatherOS one).
        #[arg(long)]
        include: Vec<std::path::PathBuf>,
        /// Boot nothing: report on the `--include` files only.
        #[arg(long)]
        no_boot: bool,
        /// Measure the kernel with tracing compiled in but off against the same kernel
        /// built without it (`--no-default-features`, built now): boots alternate
        /// between the two, and per configuration the medians, their ratio
        /// (traced over untraced), the summary and a check that both count the same
        /// IPIs are printed; the CSV's `kernel` column says which kernel.
        #[arg(long, conflicts_with = "os")]
        trace_cost: bool,
        /// With --trace-cost: boots of each kernel per CPU count and backend.
        #[arg(long, default_value_t = 1, requires = "trace_cost")]
        rounds: usize,
        /// Measure one TLB shootdown round instead of the matrix (`bench=shootdown`,
        /// issue 24; one boot per --smp): flushes of 1, 33 and 512 pages to 1..N-1 CPUs
        /// running the address space, the initiator's median cycles in serial,
        /// concurrent and early mode and their ratios to serial, beside the empty cross
        /// call to the same CPUs (the floor). Prints a table and writes shootdown.csv
        /// (a file of its own, not bench.csv) into --out; --iters is the rounds per
        /// configuration (default 200). Uses --smp, --iters, --out, --timeout and
        /// --silence only.
        #[arg(long, conflicts_with_all = ["trace_cost", "os", "include", "baseline", "no_boot"])]
        shootdown: bool,
    },
    /// Trace one operation in one scenario (one iteration, the key's sync and the forced
    /// one): prints each run's events in time order and the ordering check's verdict
    /// (a broken order exits with status 1), writes trace.json (Perfetto,
    /// chrome://tracing) and trace.svg into --out.
    Trace(boot::trace::TracePlan),
    /// Write the BIOS and UEFI images (for `dd` or your own QEMU command) into DIR.
    Image {
        /// Output directory (created if missing).
        dir: std::path::PathBuf,
        /// Boot options baked into both images.
        #[arg(long, default_value = "")]
        args: String,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Number of CPUs (1 to 288).
    #[arg(long, default_value = "4", value_parser = qemu::parse_smp)]
    smp: u32,
    /// Memory size, as QEMU's -m takes it.
    #[arg(long, default_value = "512M", value_parser = qemu::parse_mem)]
    mem: String,
    /// Boot the UEFI image with OVMF instead of the BIOS image.
    #[arg(long)]
    uefi: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// QEMU CPU model, e.g. max, Skylake-Server, EPYC-v4, qemu64 (default: max under
    /// TCG, host under KVM); see `qemu-system-x86_64 -cpu help`.
    #[arg(long, value_parser = qemu::parse_cpu_model)]
    cpu: Option<String>,
    /// Kill QEMU and fail after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Boot options for the kernel, e.g. "log=debug apic=xapic".
    #[arg(long, default_value = "")]
    args: String,
    /// Start QEMU halted, waiting for gdb on tcp::1234.
    #[arg(long)]
    gdb: bool,
    /// Attach the image as a USB stick (qemu-xhci + usb-storage), as real hardware would.
    #[arg(long)]
    usb: bool,
    /// Boot this kernel ELF instead of the one built with the tool.
    #[arg(long)]
    kernel: Option<std::path::PathBuf>,
}

impl RunArgs {
    fn qemu(&self) -> QemuConfig {
        let accel = qemu::usable_accel(self.accel, self.cpu.as_deref());
        QemuConfig {
            firmware: if self.uefi { Firmware::Uefi } else { Firmware::Bios },
            smp: self.smp,
            mem: self.mem.clone(),
            accel,
            cpu: qemu::usable_cpu(accel, self.cpu.clone()),
            timeout: Duration::from_secs(self.timeout),
            silence: None,
            gdb: self.gdb,
            usb: self.usb,
            monitor: None,
            direct: None,
            console_log: None,
        }
    }
}

fn boot(args: &RunArgs) -> Result<bool, String> {
    install::ensure()?;
    let cfg = args.qemu();
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let img = dir.path().join(format!("gatheros-{}.img", cfg.firmware));
    let kernel = args.kernel.clone().unwrap_or_else(image::kernel_elf);
    image::build(&kernel, cfg.firmware, &args.args, &img)?;
    eprintln!(
        "gatheros: booting {} image, -smp {}, -m {} ({:?})",
        cfg.firmware, cfg.smp, cfg.mem, cfg.accel
    );
    if cfg.gdb {
        eprintln!("gatheros: QEMU waits for gdb on tcp::1234 (target remote :1234)");
    }
    let outcome = qemu::run(&cfg, &img, |l| println!("{l}"))?;
    match outcome.verdict {
        Verdict::Success => Ok(true),
        Verdict::Failure | Verdict::Resume => Ok(false),
        Verdict::NoVerdict(status, stderr) => Err(format!(
            "QEMU ended without a verdict from the kernel (status {status:?}){}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        )),
    }
}

fn test(args: &RunArgs, filters: Vec<String>) -> Result<bool, String> {
    install::ensure()?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let sel = testrun::Selection {
        filters,
        ..Default::default()
    };
    let report = testrun::run(&args.qemu(), &sel, &args.args, dir.path(), |l| println!("{l}"))?;
    Ok(report.failed == 0)
}

/// The `bench` command's options beyond the plan.
struct BenchRun<'a> {
    out: &'a std::path::Path,
    baseline: Option<&'a std::path::Path>,
    include: &'a [std::path::PathBuf],
    no_boot: bool,
    /// `--trace-cost`: the number of rounds.
    trace_cost: Option<usize>,
}

/// `bench --shootdown`: boots, table, checks, `shootdown.csv`; true if nothing failed
/// and every configuration counted what it must.
fn bench_shootdown(plan: &boot::bench::BenchPlan, out: &std::path::Path) -> Result<bool, String> {
    use boot::bench_shootdown::{ShootdownPlan, check, run, table, write_csv};
    install::ensure()?;
    let plan = ShootdownPlan::of(plan);
    let report = run(&plan)?;
    print!("{}", table(&report.shootdowns));
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let csv = out.join("shootdown.csv");
    write_csv(&report.shootdowns, &csv)?;
    println!("bench: wrote {}", csv.display());
    let wrong = check(&report.shootdowns, &plan.smp);
    for w in &wrong {
        println!("shootdown: wrong: {w}");
    }
    // What failed comes last, so that it is what a reader sees.
    print!("{}", boot::bench::failures(&report));
    Ok(report.ok() && wrong.is_empty())
}

fn bench(plan: &boot::bench::BenchPlan, run: BenchRun) -> Result<bool, String> {
    let BenchRun {
        out,
        baseline,
        include,
        no_boot,
        trace_cost,
    } = run;
    install::ensure()?;
    let mut footprints = String::new();
    let report = match trace_cost {
        _ if no_boot => boot::bench::Report::default(),
        Some(rounds) => {
            let run = boot::trace_cost::run(plan, rounds)?;
            footprints = boot::trace_cost::render_footprints(&run.traced, &run.untraced);
            run.report
        }
        None => boot::bench::run(plan)?,
    };
    let mut records = report.records.clone();
    for f in include {
        records.extend(boot::bench::read_csv(f)?);
    }
    print!("{}", boot::bench::table(&records));
    let mut ipis_agree = true;
    let mut cost = String::new();
    if trace_cost.is_some() {
        // Not `saving`: it would pair lines of the two kernels.
        let (text, agree) = boot::trace_cost::render(&records);
        cost = footprints + &text;
        print!("{cost}");
        ipis_agree = agree;
    } else {
        print!("{}", boot::bench::saving(&records));
        print!("{}", boot::bench_idle::idle_costs(&records));
    }
    let walk_lines = boot::bench::walk_lines(&report);
    print!("{walk_lines}");
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let csv = out.join("bench.csv");
    boot::bench::write_csv(&records, &csv)?;
    println!("bench: wrote {}", csv.display());
    if !cost.is_empty() {
        let path = out.join("trace-cost.txt");
        std::fs::write(&path, &cost).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    if !walk_lines.is_empty() {
        let path = out.join("walk.txt");
        std::fs::write(&path, &walk_lines).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    let plots = boot::bench::plot(&records, out)?;
    println!("bench: wrote {} plots in {}", plots.len(), out.display());
    if let Some(base) = baseline {
        print!(
            "{}",
            boot::bench::compare(&records, &boot::bench::read_csv(base)?)
        );
    }
    // What failed comes last, so that it is what a reader sees.
    print!("{}", boot::bench::failures(&report));
    Ok(report.ok() && ipis_agree)
}

fn trace(plan: &boot::trace::TracePlan) -> Result<bool, String> {
    install::ensure()?;
    let traced = boot::trace::run(plan)?;
    print!("{}", traced.listing);
    for f in &traced.files {
        println!("trace: wrote {}", f.display());
    }
    Ok(traced.ok)
}

fn flash(device: &std::path::Path, uefi: bool, args: &str, yes: bool, force: bool) -> Result<bool, String> {
    use std::io::{BufRead, IsTerminal};
    let fw = if uefi { Firmware::Uefi } else { Firmware::Bios };
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let img = dir.path().join("gatheros.img");
    image::build(&image::kernel_elf(), fw, args, &img)?;
    let size = std::fs::metadata(&img).map_err(|e| e.to_string())?.len();
    let info = boot::flash::describe(device)?;
    boot::flash::check(&info, size, force).map_err(|r| format!("refusing {}: {r}", device.display()))?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err("not asking without a terminal: pass --yes".into());
        }
        eprint!(
            "Write gatherOS ({fw}, {} KiB) to {} ({}, {} MiB)? Everything on it will be lost. [y/N] ",
            size / 1024,
            device.display(),
            if info.model.is_empty() {
                "unknown model"
            } else {
                &info.model
            },
            info.size >> 20
        );
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("flash: nothing written");
            return Ok(false);
        }
    }
    let digest = boot::flash::write_and_verify(&img, device)?;
    println!(
        "flash: wrote and verified {} ({fw}, sha256 {digest})",
        device.display()
    );
    Ok(true)
}

fn write_images(dir: &std::path::Path, args: &str) -> Result<bool, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for fw in [Firmware::Bios, Firmware::Uefi] {
        let out = dir.join(format!("gatheros-{fw}.img"));
        image::build(&image::kernel_elf(), fw, args, &out)?;
        println!("image: {fw} {}", out.display());
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => boot(&cli.run),
        Some(Cmd::Run(a)) => boot(&a),
        Some(Cmd::Test { run, filters }) => test(&run, filters),
        Some(Cmd::Image { dir, args }) => write_images(&dir, &args),
        Some(Cmd::Flash {
            device,
            uefi,
            bios: _,
            args,
            yes,
            force,
        }) => flash(&device, uefi, &args, yes, force),
        Some(Cmd::Bench {
            plan,
            out,
            shootdown: true,
            ..
        }) => bench_shootdown(&plan, &out),
        Some(Cmd::Bench {
            plan,
            out,
            baseline,
            include,
            no_boot,
            trace_cost,
            rounds,
            shootdown: false,
        }) => bench(
            &plan,
            BenchRun {
                out: &out,
                baseline: baseline.as_deref(),
                include: &include,
                no_boot,
                trace_cost: trace_cost.then_some(rounds),
            },
        ),
        Some(Cmd::Trace(plan)) => trace(&plan),
        Some(Cmd::Setup) => install::ensure().map(|()| {
            println!(
                "setup: QEMU {:?} and OVMF are ready",
                install::qemu_version().unwrap_or((0, 0))
            );
            true
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gatheros: error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
