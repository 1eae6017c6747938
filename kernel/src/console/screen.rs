//! A text console on the bootloader's framebuffer (VBE under BIOS, GOP under UEFI), so
//! logs, test results and panics are readable on a monitor when there is no serial port.
//!
//! Glyphs come from `noto-sans-mono-bitmap` (16 px, anti-aliased); lines with `... ok`
//! are green, lines with `FAILED` or `panic` red. When the screen is full it scrolls by
//! half a screen at a time (one large copy instead of one per line).

use bootloader_api::info::{FrameBuffer, FrameBufferInfo, PixelFormat};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const HEIGHT: RasterHeight = RasterHeight::Size16;
const LINE: usize = 18;

struct Console {
    buf: &'static mut [u8],
    info: FrameBufferInfo,
    x: usize,
    y: usize,
}

static CONSOLE: spin::Mutex<Option<Console>> = spin::Mutex::new(None);

/// Takes over the framebuffer, if the bootloader provided one.
pub fn init(fb: Option<FrameBuffer>) {
    let Some(fb) = fb else { return };
    let info = fb.info();
    let buf = fb.into_buffer();
    buf.fill(0);
    *CONSOLE.lock() = Some(Console {
        buf,
        info,
        x: 0,
        y: 0,
    });
}

fn color_of(line: &str) -> [u8; 3] {
    if line.contains("FAILED") || line.starts_with("panic") || line.contains("(panic)") {
        [255, 80, 80]
    } else if line.ends_with("... ok") || line.contains("done (ok)") {
        [80, 220, 80]
    } else {
        [210, 210, 210]
    }
}

impl Console {
    fn newline(&mut self) {
        self.x = 0;
        self.y += LINE;
        if self.y + LINE > self.info.height {
            // Scroll by half a screen: rows [half, end) move to the top.
            let row_bytes = self.info.stride * self.info.bytes_per_pixel;
            let half = (self.info.height / 2 / LINE) * LINE;
            let len = self.info.height * row_bytes;
            self.buf.copy_within(half * row_bytes..len, 0);
            self.buf[(self.info.height - half) * row_bytes..len].fill(0);
            self.y -= half;
        }
    }

    fn put_pixel(&mut self, x: usize, y: usize, rgb: [u8; 3], alpha: u8) {
        let scale = |c: u8| ((c as u16 * alpha as u16) / 255) as u8;
        let [r, g, b] = rgb.map(scale);
        let bpp = self.info.bytes_per_pixel;
        let at = (y * self.info.stride + x) * bpp;
        let px: [u8; 4] = match self.info.pixel_format {
            PixelFormat::Rgb => [r, g, b, 0],
            PixelFormat::Bgr => [b, g, r, 0],
            PixelFormat::U8 => [((r as u16 + g as u16 + b as u16) / 3) as u8, 0, 0, 0],
            _ => [r, g, b, 0],
        };
        let n = bpp.min(4);
        if let Some(dst) = self.buf.get_mut(at..at + n) {
            dst.copy_from_slice(&px[..n]);
        }
    }

    fn write_char(&mut self, c: char, rgb: [u8; 3]) {
        if c == '\n' {
            self.newline();
            return;
        }
        let width = get_raster_width(FontWeight::Regular, HEIGHT);
        if self.x + width > self.info.width {
            self.newline();
        }
        let glyph = get_raster(c, FontWeight::Regular, HEIGHT)
            .or_else(|| get_raster('?', FontWeight::Regular, HEIGHT))
            .expect("font has '?'");
        for (dy, row) in glyph.raster().iter().enumerate() {
            for (dx, &a) in row.iter().enumerate() {
                self.put_pixel(self.x + dx, self.y + dy, rgb, a);
            }
        }
        self.x += width;
    }
}

fn draw(c: &mut Console, args: core::fmt::Arguments) {
    let line = super::line_buf::LineBuf::format(args);
    let text = line.as_str();
    for l in text.trim_end_matches('\n').split('\n') {
        let rgb = color_of(l);
        l.chars().for_each(|ch| c.write_char(ch, rgb));
        c.write_char('\n', rgb);
    }
}

/// Draws formatted text (one or more lines), each coloured by its content.
pub fn write_fmt(args: core::fmt::Arguments) {
    arch::irq::without_interrupts(|| {
        if let Some(c) = CONSOLE.lock().as_mut() {
            draw(c, args);
        }
    });
}

/// The same from the panic path: gives up rather than wait long for the lock.
pub fn write_fmt_panicking(args: core::fmt::Arguments) {
    for _ in 0..1_000_000 {
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some(c) = guard.as_mut() {
                draw(c, args);
            }
            return;
        }
        core::hint::spin_loop();
    }
}
