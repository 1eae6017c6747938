//! Where the kernel's words go: the `log` backend ([`logger`], serial port and screen),
//! the framebuffer text console ([`screen`]) and the panic handler ([`panic`]).

pub mod line_buf;
pub mod logger;
pub mod panic;
pub mod screen;
