//! Progress bars on stderr, hidden when stderr is not a terminal (scripts, CI, tests).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

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
