//! A download's progress bar on stderr, drawn only when stderr is a terminal (quiet otherwise),
//! at most five times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    /// Bytes already there when this run started (a resumed file): not counted in the speed.
    resumed: u64,
    start: Instant,
    last_draw: Option<Instant>,
    draw: bool,
}

const MB: f64 = 1e6;

impl Progress {
    pub fn new(label: &str, total: Option<u64>, resumed: u64) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: resumed,
            resumed,
            start: Instant::now(),
            last_draw: None,
            draw: std::io::stderr().is_terminal(),
        }
    }

    /// The file now holds `done` bytes (it can go back to 0 when a server ignores Range).
    pub fn set(&mut self, done: u64) {
        if done < self.resumed {
            self.resumed = done;
        }
        self.done = done;
        if self.draw
            && self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(200))
        {
            self.last_draw = Some(Instant::now());
            self.render(false);
        }
    }

    pub fn finish(&mut self) {
        if self.draw {
            self.render(true);
        }
    }

    fn render(&self, last: bool) {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.done - self.resumed) as f64 / seconds / MB;
        let amount = match self.total {
            Some(t) if t > 0 => format!(
                "{:3}% {:.1}/{:.1} MB",
                self.done * 100 / t,
                self.done as f64 / MB,
                t as f64 / MB
            ),
            _ => format!("{:.1} MB", self.done as f64 / MB),
        };
        let end = if last { "\n" } else { "" };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}: {amount} {rate:.1} MB/s{end}", self.label);
        let _ = err.flush();
    }
}
