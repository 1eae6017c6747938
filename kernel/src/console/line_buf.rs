//! A line formatted on the stack: no allocation, so it serves before the heap exists and
//! on the panic path. Text past its capacity is dropped.

/// Up to 512 bytes of formatted text.
pub struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl LineBuf {
    /// `args`, formatted (cut at 512 bytes).
    pub fn format(args: core::fmt::Arguments) -> Self {
        let mut line = LineBuf {
            buf: [0; 512],
            len: 0,
        };
        let _ = core::fmt::write(&mut line, args);
        line
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text written, up to the first invalid UTF-8 (a cut in a multi-byte character).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(t) => t,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl core::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
