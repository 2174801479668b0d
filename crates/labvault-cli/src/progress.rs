//! Progress bars on stderr, hidden when stderr is not a terminal (scripts, CI, tests).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A byte-counting bar with a message slot for the current file.
pub fn bytes_bar(verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb:>9} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}} {{wide_msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Lines on stdout that each report finished (durable) work, written in batches: at most one
/// write every [`BatchedLines::EVERY`], not one per file, so that a 10,000-file import is not
/// paced by its own output (nor a visible bar redrawn per line). A line is only ever added
/// after its work is durable, so holding it back a moment never reports anything early;
/// whatever is pending is written on drop.
pub struct BatchedLines<'a> {
    bar: &'a ProgressBar,
    pending: Vec<u8>,
    last: Instant,
}

impl<'a> BatchedLines<'a> {
    const EVERY: Duration = Duration::from_millis(100);

    pub fn new(bar: &'a ProgressBar) -> Self {
        BatchedLines {
            bar,
            pending: Vec::new(),
            last: Instant::now(),
        }
    }

    pub fn line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.pending, "{line}");
        if self.last.elapsed() >= Self::EVERY {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        self.last = Instant::now();
        if self.pending.is_empty() {
            return;
        }
        self.bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&self.pending);
            let _ = out.flush();
        });
        self.pending.clear();
    }
}

impl Drop for BatchedLines<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
