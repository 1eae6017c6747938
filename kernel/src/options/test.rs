//! The test harness's options (`test=on`, `test.suites=`, `test.filter=`, ...).

extern crate alloc;
use alloc::vec::Vec;
use ktest::registry::Suite;

/// What the in-kernel test harness should run (present when `test=on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOptions {
    /// The suites to run (`test.suites=quick,watchdog,soak` or `all`; default: every
    /// suite but the soak, whose full length takes many minutes).
    pub suites: Vec<Suite>,
    /// Substring filters (`test.filter=`); a test runs if it matches any (or none given).
    pub filters: Vec<&'static str>,
    /// Filters must match the whole name (`test.exact=on`).
    pub exact: bool,
    /// Only the tests about the flush backend (`test.backend_tests=on`: those limited to
    /// some backends or declared `per_backend()`), for the configurations of a backend.
    pub backend_tests: bool,
    /// Only the tests about scale (`test.scale_tests=on`: declared `scale()`), for the
    /// largest configurations.
    pub scale_tests: bool,
    /// Tests whose name contains any of these are skipped (`test.skip=`).
    pub skips: Vec<&'static str>,
    /// Index (in the filtered, sorted list) to start from after a resume (`test.start=`).
    pub start: usize,
    /// Results carried over from earlier boots of the same run.
    pub passed: usize,
    /// See `passed`.
    pub failed: usize,
    /// See `passed`: tests this machine cannot run (their `needs`).
    pub ignored: usize,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            suites: alloc::vec![Suite::Quick, Suite::Watchdog],
            filters: Vec::new(),
            exact: false,
            backend_tests: false,
            scale_tests: false,
            skips: Vec::new(),
            start: 0,
            passed: 0,
            failed: 0,
            ignored: 0,
        }
    }
}

/// `test.suites=`: a comma-separated list of suite names, or `all`.
pub(super) fn parse_suites(value: &str) -> Option<Vec<Suite>> {
    if value == "all" {
        return Some(Suite::ALL.to_vec());
    }
    let mut suites = Vec::new();
    for name in value.split(',') {
        let suite = Suite::from_name(name)?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    Some(suites)
}
