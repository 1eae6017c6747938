//! The text of an event: the line the kernel prints on the serial port for each recorded
//! event, `trace-event: cpu=<n> tsc=<stamp> event=<name> <arg>=<value>...`, and reads back
//! on the host ([`parse`]); the arguments print by their [`Fmt`] (the host's listing uses
//! [`Args`] for the same text after its own `trace: cpu=.. t_ns=..`). Rings that lost
//! events say so in one line each, `trace-lost: cpu=<n> overwritten=<k> torn=<k>`.

extern crate alloc;
use alloc::string::String;
use core::fmt;

use crate::event::{ARGS, Fmt, Kind, Record};

/// The prefix of an event line.
pub const EVENT: &str = "trace-event:";
/// The prefix of a lost-events line.
pub const LOST: &str = "trace-lost:";

/// A record's arguments as text (`mm=3 gen=5 targets=1,2 ...`); `text` is what a
/// [`Fmt::Text`] argument points to (the caller resolves it; `?` without).
pub struct Args<'a> {
    /// The event.
    pub rec: &'a Record,
    /// The text of its [`Fmt::Text`] argument, if it has one.
    pub text: Option<&'a str>,
}

impl fmt::Display for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.rec.kind.spec();
        let mut first = true;
        for (i, &(name, fmt)) in spec.args.iter().enumerate() {
            let v = self.rec.args[i];
            if i > 0 && matches!(spec.args[i - 1].1, Fmt::Text) {
                continue; // the length of the text before
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}=")?;
            match fmt {
                Fmt::Dec => write!(f, "{v}")?,
                Fmt::Hex => write!(f, "{v:#x}")?,
                Fmt::Name(names) => f.write_str(names.get(v as usize).copied().unwrap_or("?"))?,
                Fmt::Cpus => write_cpus(f, v)?,
                Fmt::Text => {
                    for c in self.text.unwrap_or("?").chars() {
                        write!(f, "{}", if c.is_whitespace() { '_' } else { c })?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_cpus(f: &mut fmt::Formatter<'_>, mask: u64) -> fmt::Result {
    if mask == 0 {
        return f.write_str("-");
    }
    let mut sep = "";
    for c in (0..64).filter(|c| mask & (1 << c) != 0) {
        write!(f, "{sep}{c}")?;
        sep = ",";
    }
    Ok(())
}

/// The kernel's line for `rec` (`trace-event: ...`).
pub struct EventLine<'a>(pub Args<'a>);

impl fmt::Display for EventLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0.rec;
        write!(
            f,
            "{EVENT} cpu={} tsc={} event={} {}",
            r.cpu,
            r.tsc,
            r.kind.name(),
            self.0
        )
    }
}

/// An event line read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The event (a [`Fmt::Text`] argument holds 0).
    pub rec: Record,
    /// The text of its [`Fmt::Text`] argument.
    pub text: Option<String>,
}

/// Reads an event line (anything before [`EVENT`] is ignored); `None` if it is not one or
/// does not parse (an unknown kind, a missing argument).
pub fn parse(line: &str) -> Option<Parsed> {
    let rest = &line[line.find(EVENT)? + EVENT.len()..];
    let mut words = rest.split_whitespace();
    let field = |w: Option<&str>, key: &str| -> Option<String> {
        let (k, v) = w?.split_once('=')?;
        (k == key).then(|| String::from(v))
    };
    let cpu: u32 = field(words.next(), "cpu")?.parse().ok()?;
    let tsc: u64 = field(words.next(), "tsc")?.parse().ok()?;
    let kind = Kind::from_name(&field(words.next(), "event")?)?;
    let mut args = [0u64; ARGS];
    let mut text = None;
    let spec = kind.spec();
    let mut i = 0;
    while i < spec.args.len() {
        let (name, fmt) = spec.args[i];
        let v = field(words.next(), name)?;
        match fmt {
            Fmt::Dec => args[i] = v.parse().ok()?,
            Fmt::Hex => args[i] = u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()?,
            Fmt::Name(names) => args[i] = names.iter().position(|n| *n == v)? as u64,
            Fmt::Cpus => args[i] = parse_cpus(&v)?,
            Fmt::Text => {
                text = Some(v);
                i += 1; // its length word does not print
            }
        }
        i += 1;
    }
    Some(Parsed {
        rec: Record { cpu, tsc, kind, args },
        text,
    })
}

fn parse_cpus(v: &str) -> Option<u64> {
    if v == "-" {
        return Some(0);
    }
    v.split(',').try_fold(0u64, |m, c| {
        let c: u32 = c.parse().ok()?;
        (c < 64).then_some(m | 1 << c)
    })
}

/// A lost-events line read back: (cpu, overwritten, torn).
pub fn parse_lost(line: &str) -> Option<(u32, u64, u64)> {
    let rest = &line[line.find(LOST)? + LOST.len()..];
    let mut vals = rest.split_whitespace().map(|w| w.split_once('=').map(|(_, v)| v));
    let cpu = vals.next()??.parse().ok()?;
    let over = vals.next()??.parse().ok()?;
    let torn = vals.next()??.parse().ok()?;
    Some((cpu, over, torn))
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
