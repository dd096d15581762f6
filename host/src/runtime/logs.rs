//! What a plugin writes to droid's log, and how much it may.
//!
//! A plugin's log line is a host call it can make as often as it likes, with
//! any text. Unbounded, one call could flood the log (and every request
//! waiting to log behind it), and a newline in a message could forge a line
//! that looks like droid's own. So each line is escaped (control characters
//! shown as `\n`, `\u{1b}`, ...: one call's line is one line of the log) and
//! cut to a length, and lines are counted against two budgets: per call
//! (lines and bytes) and per record type per second. What goes over is
//! dropped and counted, and the call ends with one line saying how much.
//!
//! This module does not write anything itself: [`super::state`] calls it
//! from the `log` import and at the end of a call.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::PluginLimits;

/// The longest single line kept, before escaping; a longer one is cut.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024;

/// A record type's lines per second, shared by all its calls.
#[derive(Debug)]
pub(crate) struct LogBudget {
    per_second: u32,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl LogBudget {
    /// A budget of `per_second` lines (0: none at all).
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            limiter: NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n))),
        }
    }

    /// The lines per second it allows.
    pub(crate) fn per_second(&self) -> u32 {
        self.per_second
    }

    fn take(&self) -> bool {
        self.limiter.as_ref().is_some_and(|l| l.check().is_ok())
    }
}

/// Why a line was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The call's own budget of lines or bytes is spent.
    Call,
    /// The record type's lines per second are spent.
    Rate,
}

impl Dropped {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Dropped::Call => "call_budget",
            Dropped::Rate => "rate",
        }
    }
}

/// One call's log so far.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    lines: u32,
    bytes: u64,
    /// Lines dropped, by reason: call budget, rate.
    pub(crate) dropped: [u64; 2],
}

impl CallLog {
    /// The line to write for `message`, escaped and cut, or why it is dropped.
    pub(crate) fn admit(
        &mut self,
        message: &str,
        limits: &PluginLimits,
        budget: &LogBudget,
    ) -> Result<String, Dropped> {
        let room = u64::from(limits.log_bytes_per_call).saturating_sub(self.bytes);
        if self.lines >= limits.log_lines_per_call || room == 0 {
            self.dropped[0] += 1;
            return Err(Dropped::Call);
        }
        if !budget.take() {
            self.dropped[1] += 1;
            return Err(Dropped::Rate);
        }
        let keep = MAX_LINE_BYTES.min(usize::try_from(room).unwrap_or(usize::MAX));
        let kept = cut(message, keep);
        self.lines += 1;
        self.bytes += kept.len() as u64;
        let mut line = escape(kept);
        if kept.len() < message.len() {
            line.push_str(&format!(" [{} bytes cut]", message.len() - kept.len()));
        }
        Ok(line)
    }

    /// Lines dropped in all.
    pub(crate) fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with every control character written as an escape, so it stays on
/// one line and cannot steer a terminal.
pub(crate) fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(lines: u32, bytes: u32) -> PluginLimits {
        PluginLimits {
            log_lines_per_call: lines,
            log_bytes_per_call: bytes,
            ..PluginLimits::default()
        }
    }

    #[test]
    fn a_line_with_a_newline_stays_one_line() {
        assert_eq!(
            escape("ok\n2026 ERROR droid: FORGED\r\x1b[2J"),
            "ok\\n2026 ERROR droid: FORGED\\r\\u{1b}[2J"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn a_call_logs_within_its_lines_and_bytes() {
        let budget = LogBudget::new(1_000);
        let mut log = CallLog::default();
        let limits = limits(3, 10);
        assert_eq!(log.admit("12345", &limits, &budget).unwrap(), "12345");
        assert_eq!(
            log.admit("6789abcdef", &limits, &budget).unwrap(),
            "6789a [5 bytes cut]"
        );
        assert_eq!(log.admit("x", &limits, &budget), Err(Dropped::Call));
        assert_eq!(log.total_dropped(), 1);
    }

    #[test]
    fn the_rate_is_shared_by_calls() {
        let budget = LogBudget::new(2);
        let limits = limits(100, 1_000);
        let (mut a, mut b) = (CallLog::default(), CallLog::default());
        assert!(a.admit("1", &limits, &budget).is_ok());
        assert!(b.admit("2", &limits, &budget).is_ok());
        assert_eq!(a.admit("3", &limits, &budget), Err(Dropped::Rate));
        assert!(!LogBudget::new(0).take());
    }
}
