//! A streaming zstd writer that tells how much of its input is compressed: after every call
//! into zstd it stores the frame's `consumed` count (input bytes zstd's workers have
//! compressed, not merely buffered) in a shared counter another thread may read, so a
//! progress bar follows the compression itself, which in multithreaded mode mostly happens
//! after the last byte was written.
//!
//! The calls are those of the `zstd` crate's stream writer (`ZSTD_compressStream2` with
//! `continue`, then `end`), with the same parameters, so the output is byte for byte the same;
//! zstd's multithreaded output depends neither on the worker count nor on how the input is cut
//! into writes.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use zstd::zstd_safe::{self, CCtx, CParameter, InBuffer, OutBuffer};

fn zerr(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}

/// The encoder: input written to it is compressed into `out`.
pub struct Encoder<W: Write> {
    cctx: CCtx<'static>,
    out: W,
    buf: Vec<u8>,
    compressed: Arc<AtomicU64>,
}

impl<W: Write> Encoder<W> {
    /// An encoder with these parameters; `compressed` receives the input bytes compressed.
    pub fn new(out: W, params: &[CParameter], compressed: Arc<AtomicU64>) -> io::Result<Self> {
        let mut cctx = CCtx::create();
        for p in params {
            cctx.set_parameter(*p).map_err(zerr)?;
        }
        Ok(Self {
            cctx,
            out,
            buf: vec![0; CCtx::out_size()],
            compressed,
        })
    }

    /// One call into zstd: compresses what it can of `input`, writes what it produced.
    fn step(&mut self, input: &mut InBuffer<'_>, end: bool) -> io::Result<usize> {
        let directive = match end {
            true => zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end,
            false => zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue,
        };
        let mut output = OutBuffer::around(&mut self.buf[..]);
        let remaining = self
            .cctx
            .compress_stream2(&mut output, input, directive)
            .map_err(zerr)?;
        let n = output.pos();
        self.out.write_all(&self.buf[..n])?;
        let p = self.cctx.get_frame_progression();
        self.compressed.store(p.consumed, Ordering::Relaxed);
        Ok(remaining)
    }

    /// Ends the frame (waiting for the workers) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut empty = InBuffer::around(&[]);
        while self.step(&mut empty, true)? != 0 {}
        Ok(self.out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut input = InBuffer::around(data);
        // zstd may take nothing while its workers are busy: call again until it takes some.
        while input.pos() == 0 {
            self.step(&mut input, false)?;
        }
        Ok(input.pos())
    }

    /// Writes what zstd has produced so far; never ends a block early (that would change the
    /// output).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
