//! Values of boot options: the refusal a bad word gets, and the parsers of booleans,
//! numbers and bounded numbers.

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

pub(super) fn parse_bool(key: &'static str, value: &'static str) -> Result<bool, OptionError> {
    match value {
        "on" | "yes" | "1" | "true" => Ok(true),
        "off" | "no" | "0" | "false" => Ok(false),
        _ => Err(OptionError::BadValue {
            key,
            value,
            expected: "on|off",
        }),
    }
}

pub(super) fn parse_usize(key: &'static str, value: &'static str) -> Result<usize, OptionError> {
    value.parse().map_err(|_| OptionError::BadValue {
        key,
        value,
        expected: "a number",
    })
}

/// A number in `[min, max]`, or a refusal naming the range.
pub(super) fn bounded(
    key: &'static str,
    value: &'static str,
    (min, max): (u64, u64),
    expected: &'static str,
) -> Result<u64, OptionError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(OptionError::BadValue { key, value, expected }),
    }
}
