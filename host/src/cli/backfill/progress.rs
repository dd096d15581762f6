//! What a person watching a backfill sees: a progress bar with the rate and,
//! when the endpoint says how many events there are, the ETA. Where standard
//! error is not a terminal (CI, a log file) a plain line every few seconds
//! says the same.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressStyle};

/// How often the plain-text fallback prints.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The progress display of one backfill.
#[derive(Debug)]
pub struct Display {
    bar: ProgressBar,
    plain: Option<Plain>,
}

/// The plain-text fallback's own bookkeeping.
#[derive(Debug)]
struct Plain {
    label: String,
    started: Instant,
    start_events: u64,
    last: Instant,
}

impl Display {
    /// A display for `label`, starting at `events` already done (of `total`, if known).
    pub fn new(label: &str, events: u64, total: Option<u64>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_prefix(label.to_owned());
        bar.set_position(events);
        let display = Self {
            bar,
            plain: (!terminal).then(|| Plain {
                label: label.to_owned(),
                started: Instant::now(),
                start_events: events,
                last: Instant::now(),
            }),
        };
        display.set_total(total);
        display.bar.enable_steady_tick(Duration::from_millis(200));
        display
    }

    /// Sets the expected number of events (from the endpoint's latest page).
    pub fn set_total(&self, total: Option<u64>) {
        let template = match total {
            Some(total) => {
                self.bar.set_length(total.max(self.bar.position()));
                "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events, {per_sec}, ETA {eta} {msg}"
            }
            None => "{spinner} {prefix} [{elapsed_precise}] {human_pos} events, {per_sec} {msg}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
    }

    /// Notes `events` more events acknowledged.
    pub fn advance(&mut self, events: u64) {
        self.bar.inc(events);
        let position = self.bar.position();
        let length = self.bar.length();
        if let Some(plain) = &mut self.plain
            && plain.last.elapsed() >= PLAIN_EVERY
        {
            plain.last = Instant::now();
            let rate = (position - plain.start_events) as f64
                / plain.started.elapsed().as_secs_f64().max(1e-3);
            let of = match length {
                Some(total) if total > 0 => {
                    let left = total.saturating_sub(position) as f64 / rate.max(1e-3);
                    format!(
                        "/{} events, ETA {}s",
                        HumanCount(total),
                        left.round() as u64
                    )
                }
                _ => " events".to_owned(),
            };
            eprintln!("{}: {}{of}, {rate:.0}/s", plain.label, HumanCount(position));
        }
    }

    /// Shows a short note beside the bar (such as a wait for the rate limit).
    pub fn note(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    /// Takes the bar off the screen.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
