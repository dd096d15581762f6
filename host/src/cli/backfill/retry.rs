//! Retrying the requests of a backfill: failures that may pass (a connection
//! refused, a timeout, a `5xx`) are tried again with doubling waits, up to a
//! bound; being told to slow down (`429`) is waited out without using up an
//! attempt, since it is flow control rather than failure.

use std::future::Future;
use std::time::Duration;

/// What one try came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// It worked.
    Done(T),
    /// It failed in a way that may pass: why, and how long the other side asked us to wait.
    Again(String, Option<Duration>),
    /// The other side asks us to slow down for this long; not a failure.
    Wait(Duration),
    /// It failed in a way that will not pass by trying again.
    Fatal(anyhow::Error),
}

/// How often and how patiently to try.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Tries per request before giving up (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub first_wait: Duration,
    /// The longest wait between tries.
    pub max_wait: Duration,
}

impl Retry {
    /// Runs `attempt` until it is done, fatal, or out of tries.
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut failures = 0;
        let mut wait = self.first_wait;
        loop {
            match attempt().await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fatal(e) => return Err(e.context(what.to_owned())),
                Attempt::Wait(pause) => tokio::time::sleep(pause).await,
                Attempt::Again(why, asked) => {
                    failures += 1;
                    if failures >= self.attempts.max(1) {
                        anyhow::bail!("{what}: gave up after {failures} tries: {why}");
                    }
                    let pause = asked.unwrap_or(wait).min(self.max_wait);
                    tracing::warn!(request = what, error = %why, retry_in_ms = pause.as_millis() as u64, "request failed; trying again");
                    tokio::time::sleep(pause).await;
                    wait = (wait * 2).min(self.max_wait);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            first_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn failures_that_may_pass_are_retried_up_to_the_bound() {
        let mut calls = 0;
        let result = quick(3)
            .run("GET x", || {
                calls += 1;
                let n = calls;
                async move {
                    match n {
                        1 => Attempt::Wait(Duration::from_millis(1)),
                        2 | 3 => Attempt::Again("refused".into(), None),
                        _ => Attempt::Done(n),
                    }
                }
            })
            .await;
        // The wait did not use up a try: two failures, then success.
        assert_eq!(result.unwrap(), 4);

        let mut calls = 0;
        let error = quick(2)
            .run("GET y", || {
                calls += 1;
                async { Attempt::<()>::Again("refused".into(), None) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 2);
        assert_eq!(error.to_string(), "GET y: gave up after 2 tries: refused");
    }

    #[tokio::test]
    async fn a_fatal_failure_is_not_retried() {
        let mut calls = 0;
        let error = quick(5)
            .run("POST z", || {
                calls += 1;
                async { Attempt::<()>::Fatal(anyhow::anyhow!("404 unknown_source")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(format!("{error:#}"), "POST z: 404 unknown_source");
    }
}
