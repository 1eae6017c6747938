//! The kernel draws its log on the framebuffer: a screenshot through the QEMU monitor
//! (`screendump`) must show text (non-background pixels in the text area), under BIOS
//! (VBE) and UEFI (GOP). The screenshots stay in the test's target directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boot::image::{self, Firmware};
use boot::qemu::{self, QemuConfig, Verdict};

/// Reads a binary PPM (P6): (width, height, RGB bytes).
fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let data = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).to_string());
    }
    assert_eq!(fields[0], "P6");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, data[i + 1..].to_vec())
}

fn screenshot(firmware: Firmware) -> PathBuf {
    boot::install::ensure().expect("QEMU");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("screen.img");
    // The kernel holds its final exit for a minute (the most `hold=` takes); the test
    // ends QEMU itself once the screenshot is written, so a slow host is never racing a
    // fixed hold.
    image::build(&image::kernel_elf(), firmware, "hold=60000", &img).unwrap();
    let sock = dir.path().join("monitor.sock");
    let cfg = QemuConfig {
        firmware,
        smp: 1,
        monitor: Some(sock.clone()),
        timeout: Duration::from_secs(900),
        ..Default::default()
    };
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        qemu::run(&cfg, &img, |l| {
            if l == "gatherOS: done (ok)" {
                let _ = tx.send(());
            }
        })
    });
    let what = |runner: std::thread::JoinHandle<Result<qemu::Outcome, String>>| match runner.join().unwrap() {
        Ok(o) => o.describe(),
        Err(e) => e,
    };
    if rx.recv_timeout(Duration::from_secs(900)).is_err() {
        panic!(
            "{firmware}: the kernel did not print `gatherOS: done (ok)`:\n{}",
            what(runner)
        );
    }
    // The serial line comes first; give the console a moment to finish drawing it.
    std::thread::sleep(Duration::from_millis(1000));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("screenshot-{firmware}.ppm"));
    let _ = std::fs::remove_file(&out);
    let mut mon = std::os::unix::net::UnixStream::connect(&sock).expect("monitor socket");
    writeln!(mon, "screendump {}", out.display()).unwrap();
    let end = Instant::now() + Duration::from_secs(50);
    while std::fs::metadata(&out).map_or(true, |m| m.len() < 100) {
        assert!(Instant::now() < end, "no screenshot written");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The file is complete when its size stops changing.
    let mut size = 0;
    while std::fs::metadata(&out).map_or(0, |m| m.len()) != size {
        size = std::fs::metadata(&out).map_or(0, |m| m.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    writeln!(mon, "quit").unwrap();
    let outcome = runner
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{firmware}: {e}"));
    // Ended by `quit` (status 0, no verdict of its own): the kernel's was printed.
    assert!(
        matches!(outcome.verdict, Verdict::NoVerdict(Some(0), _) | Verdict::Success),
        "{firmware}: QEMU ended otherwise than by the test's quit:\n{}",
        outcome.describe()
    );
    out
}

fn assert_text_drawn(path: &Path) {
    let (w, h, rgb) = read_ppm(path);
    // The text area: the top 200 rows, where the first log lines are.
    let rows = h.min(200);
    let lit = (0..rows * w)
        .filter(|&p| rgb[p * 3..p * 3 + 3].iter().any(|&c| c > 60))
        .count();
    println!(
        "screenshot {}: {w}x{h}, {lit} lit pixels in the top {rows} rows",
        path.display()
    );
    assert!(lit > 2000, "no text on screen ({lit} lit pixels)");
}

#[test]
fn bios_console_draws_text() {
    assert_text_drawn(&screenshot(Firmware::Bios));
}

#[test]
fn uefi_console_draws_text() {
    assert_text_drawn(&screenshot(Firmware::Uefi));
}
