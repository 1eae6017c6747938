//! The kernel's `log` backend: every record goes to the serial port and the screen.
//!
//! Info lines are printed bare, because they are the stable, greppable `name: key=value`
//! lines that tests and benchmarks read; other levels carry their level as a prefix.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match record.level() {
            Level::Info => {
                arch::serial::write_fmt(format_args!("{}\n", record.args()));
                crate::console::screen::write_fmt(format_args!("{}", record.args()));
            }
            level => {
                arch::serial::write_fmt(format_args!("{}: {}\n", level_name(level), record.args()));
                crate::console::screen::write_fmt(format_args!("{}: {}", level_name(level), record.args()));
            }
        }
    }

    fn flush(&self) {}
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Brings up the serial port and installs the logger at `Info`.
pub fn init() {
    arch::serial::init();
    // Only fails if a logger is already set, which is harmless.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}
