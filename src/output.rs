//! Presentation helpers: human sizes, progress bars, error chains, and `outln!`, which writes
//! a line to stdout and returns the error instead of panicking (a closed pipe, as in
//! `capsa inspect --files | head`, then ends the command quietly).

/// `println!` that returns `std::io::Result` through `?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// True when the error is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `12.3 MB`-style sizes (decimal units, as `du --si`).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The error and its causes on one line: `a: b: c`.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A byte progress bar on stderr when it is a terminal; hidden otherwise.
pub fn bar(message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    styled(ProgressBar::new(0), message)
}

fn styled(pb: ProgressBar, message: &'static str) -> ProgressBar {
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(message);
    pb
}

/// Adapts a progress bar to the packer's progress trait: the bytes of the layers' tar streams
/// compressed, shown (on a terminal) from the moment compression starts.
pub struct PackBar {
    bar: ProgressBar,
    shown: bool,
}

impl PackBar {
    pub fn new(message: &'static str) -> Self {
        // Capturing comes first and can take a while: no empty bar meanwhile.
        let hidden = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        Self {
            bar: styled(hidden, message),
            shown: std::io::stderr().is_terminal(),
        }
    }
}

impl packer::Progress for PackBar {
    fn start(&mut self, total: u64) {
        self.bar.set_length(total);
        self.bar.reset_eta();
        if self.shown {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
    fn compressed(&mut self, bytes: u64) {
        // The total is an estimate of the tar streams' size: never past it.
        self.bar
            .set_position(bytes.min(self.bar.length().unwrap_or(bytes)));
    }
    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    /// The dates `inspect` shows come from the repository client's formatter.
    #[test]
    fn utc_dates() {
        assert_eq!(repository::client::text::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            repository::client::text::utc(951_782_400),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            repository::client::text::utc(1_704_164_645),
            "2024-01-02 03:04:05 UTC"
        );
    }
}
