//! The fuzz tests' input generator (the runner's flags, fuzzed boots): xorshift64*, from
//! a fixed seed so that a failure is reproducible. Written out because test inputs need
//! no better randomness and the host tool takes no dependency for it. (The kernel's option
//! fuzz has its own copy: it is `no_std` and cannot use this crate.)

/// A xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}
