//! Values of boot options: the refusal a bad word gets, and the parsers of booleans,
//! numbers, bounded numbers, lists and choices (what each key accepts is in its
//! [`super::KEYS`] row).

extern crate alloc;
use alloc::vec::Vec;

/// A problem with one word of the options; logged, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// The key is not known.
    UnknownKey(&'static str),
    /// The key is known but the value is not valid for it.
    BadValue {
        key: &'static str,
        value: &'static str,
        expected: &'static str,
    },
}

impl core::fmt::Display for OptionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OptionError::UnknownKey(k) => write!(f, "options: unknown key '{k}' (ignored)"),
            OptionError::BadValue { key, value, expected } => write!(
                f,
                "options: bad value '{value}' for '{key}' (expected {expected}; using the default)"
            ),
        }
    }
}

/// `on|off` (also `yes|no`, `1|0`, `true|false`).
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "on" | "yes" | "1" | "true" => Some(true),
        "off" | "no" | "0" | "false" => Some(false),
        _ => None,
    }
}

/// A number.
pub(super) fn parse_usize(value: &str) -> Option<usize> {
    value.parse().ok()
}

/// A number in `[min, max]`.
pub(super) fn bounded(value: &str, (min, max): (u64, u64)) -> Option<u64> {
    value.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

/// A comma-separated list, each item parsed by `item`; `None` if any is refused.
pub(super) fn parse_list<T>(value: &str, item: fn(&str) -> Option<T>) -> Option<Vec<T>> {
    value.split(',').map(item).collect()
}

/// The value paired with `text` in `choices`, if any.
pub(super) fn choose<T: Copy>(text: &str, choices: &[(&str, T)]) -> Option<T> {
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|&(_, value)| value)
}

/// Pushes `item` onto `list`: for the keys that take any value.
pub(super) fn push<T>(list: &mut Vec<T>, item: T) -> Option<()> {
    list.push(item);
    Some(())
}
