//! Spin-loop hint: the one call a model's wait loop must make per iteration.

use crate::exec;

/// One iteration of a spin loop: in a model, parks the thread until some write has
/// reached memory since its last iteration (until then it would read the same values
/// again); outside, `std::hint::spin_loop`.
pub fn spin_loop() {
    match exec::current() {
        Some((e, me)) => e.spin(me),
        None => std::hint::spin_loop(),
    }
}
