//! `droid backfill RECORD_TYPE`: loads a record type's history from its
//! provider's bootstrap endpoint into a running droid.
//!
//! The command is a client of both sides: it pages through the provider's
//! endpoint ([`bootstrap`]) and posts every page to droid's ingestion API
//! ([`sink`]), so backfilled events take the live path (transformer, dead
//! letters, idempotency, version order, the source's rate limit) and droid
//! keeps serving meanwhile. After each acknowledged page the cursor is saved
//! ([`state`]); a run that was interrupted resumes there. A client-side rate
//! limit paces the posts, and a `429` from droid is waited out.

mod bootstrap;
mod progress;
mod retry;
mod sink;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use droid_host::config::{Config, Mode, SourceConfig};
use governor::{DefaultDirectRateLimiter, Quota};
use indicatif::HumanCount;

use bootstrap::Bootstrap;
use retry::Retry;
use sink::Sink;
use state::{Progress, StateFile};

/// What `droid backfill` was asked to do: its flags.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The ingested record type.
    record_type: String,
    /// The configuration file (sources, bootstrap endpoints, the store's folder).
    #[arg(long, short)]
    config: PathBuf,
    /// The source to post as, when several feed the record type.
    #[arg(long)]
    source: Option<String>,
    /// The running droid [default: from server.listen].
    #[arg(long, env = "DROID_SERVER")]
    server: Option<String>,
    /// The bootstrap endpoint [default: the source's bootstrap_url].
    #[arg(long)]
    from: Option<url::Url>,
    /// A header for the bootstrap endpoint, as "Name: value"; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Events asked for per page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_size: u32,
    /// Events per second [default: the source's rate_limit, else unlimited].
    #[arg(long)]
    rate: Option<NonZeroU32>,
    /// The file the cursor is kept in [default: backfill/SOURCE.json beside the store].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Start from the first page, ignoring a saved cursor.
    #[arg(long)]
    restart: bool,
    /// Tries per request before giving up (failures that may pass: refused
    /// connections, timeouts, 5xx).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
    /// How to authenticate to droid (a publisher of the source); `--key` signs
    /// a fresh token for every post.
    #[command(flatten)]
    credentials: super::credentials::CredentialArgs,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once(':')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected \"Name: value\", found {text:?}"))
}

/// Runs a backfill to its end (or to an error, with the cursor saved).
pub fn run(options: Options) -> anyhow::Result<()> {
    let config = Config::load(&options.config)?;
    let (source_name, source) = pick_source(&config, &options)?;
    let url = match (&options.from, &source.bootstrap_url) {
        (Some(url), _) | (None, Some(url)) => url.clone(),
        (None, None) => bail!(
            "{}: sources.{source_name}.bootstrap_url is not set (or pass --from URL)",
            config.source.display()
        ),
    };
    let server = match &options.server {
        Some(server) => server.clone(),
        None => server_from_listen(config.listen)?,
    };
    let state_path = options.state.clone().unwrap_or_else(|| {
        let folder = config.store_path.parent().unwrap_or(&config.source);
        folder.join("backfill").join(format!("{source_name}.json"))
    });
    let state = StateFile::lock(&state_path)?;
    let mut progress = match state.load()? {
        Some(saved) if !options.restart => {
            if saved.bootstrap_url != url.as_str() || saved.source != source_name {
                bail!(
                    "{} belongs to a backfill of source {} from {}; pass --restart to start this one over, or --state for another file",
                    state.path().display(),
                    saved.source,
                    saved.bootstrap_url
                );
            }
            if saved.complete {
                println!(
                    "the backfill of {} from {url} is already complete ({} events); pass --restart to run it again",
                    options.record_type,
                    HumanCount(saved.events)
                );
                return Ok(());
            }
            eprintln!(
                "resuming after {} events ({} pages) from cursor {:?}",
                HumanCount(saved.events),
                saved.pages,
                saved.cursor.as_deref().unwrap_or("")
            );
            saved
        }
        _ => Progress {
            source: source_name.clone(),
            bootstrap_url: url.to_string(),
            ..Progress::default()
        },
    };

    droid_host::tls::install_default_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build an HTTP client")?;
    let job = Job {
        bootstrap: Bootstrap::new(
            url,
            options.headers,
            options.page_size as usize,
            client.clone(),
        ),
        sink: Sink::new(&server, &source_name, client, options.credentials),
        limiter: limiter(
            options.rate.or(source.rate_limit),
            options.page_size as usize,
        ),
        retry: Retry {
            attempts: options.attempts,
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        },
        state,
    };
    let started = Instant::now();
    let before = progress.events;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let label = format!("{} <- {source_name}", options.record_type);
    let result = runtime.block_on(job.run(&label, &mut progress));
    let sent = progress.events - before;
    let elapsed = started.elapsed().as_secs_f64();
    let outcomes = progress.outcomes;
    let summary = format!(
        "{} events in {} pages ({} applied, {} duplicate, {} rejected, {} failed, {} invalid); this run: {} events in {elapsed:.1} s ({:.0}/s)",
        HumanCount(progress.events),
        progress.pages,
        HumanCount(outcomes.applied),
        HumanCount(outcomes.duplicate),
        outcomes.rejected,
        outcomes.failed,
        outcomes.invalid,
        HumanCount(sent),
        sent as f64 / elapsed.max(1e-3)
    );
    result.with_context(|| {
        format!(
            "backfill stopped after {summary}; run the same command again to resume from the saved cursor"
        )
    })?;
    println!(
        "backfill of {} from source {source_name} complete: {summary}",
        options.record_type
    );
    if outcomes.rejected + outcomes.failed > 0 {
        println!(
            "events that did not go through are in dead letters: droid dead-letters list --source {source_name}"
        );
    }
    Ok(())
}

/// The source that feeds `record_type`: the one named, or the only one.
fn pick_source<'c>(
    config: &'c Config,
    options: &Options,
) -> anyhow::Result<(String, &'c SourceConfig)> {
    let file = config.source.display();
    let record_type = &options.record_type;
    match config.record_types.get(record_type) {
        None => bail!("{file}: no record type named {record_type:?} is declared"),
        Some(rt) if matches!(rt.mode, Mode::ReadThrough(_)) => {
            bail!(
                "{file}: record type {record_type:?} is read-through; only ingested record types are backfilled"
            )
        }
        Some(_) => {}
    }
    if let Some(name) = &options.source {
        return match config.sources.get(name) {
            Some(source) if &source.record_type == record_type => Ok((name.clone(), source)),
            Some(source) => bail!(
                "{file}: source {name:?} feeds record type {:?}, not {record_type:?}",
                source.record_type
            ),
            None => bail!("{file}: no source named {name:?} is declared"),
        };
    }
    let feeding: Vec<_> = config
        .sources
        .iter()
        .filter(|(_, s)| &s.record_type == record_type)
        .collect();
    match feeding.as_slice() {
        [(name, source)] => Ok(((*name).clone(), *source)),
        [] => bail!("{file}: no [sources.NAME] feeds record type {record_type:?}"),
        several => bail!(
            "{file}: sources {} feed record type {record_type:?}; choose one with --source",
            several
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `http://ADDRESS` of the configured listener, with a wildcard address made local.
fn server_from_listen(listen: SocketAddr) -> anyhow::Result<String> {
    if listen.port() == 0 {
        bail!("server.listen has port 0 (any free port); pass --server with the droid's address");
    }
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, listen.port())))
}

/// Paces posts at `rate` events per second, in chunks of at most one second's worth.
fn limiter(
    rate: Option<NonZeroU32>,
    page_size: usize,
) -> Option<(DefaultDirectRateLimiter, usize)> {
    let rate = rate?;
    let chunk = page_size.min(rate.get() as usize).max(1);
    let burst = NonZeroU32::new(chunk as u32).unwrap_or(NonZeroU32::MIN);
    Some((
        governor::RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        chunk,
    ))
}

/// A backfill under way.
struct Job {
    bootstrap: Bootstrap,
    sink: Sink,
    limiter: Option<(DefaultDirectRateLimiter, usize)>,
    retry: Retry,
    state: StateFile,
}

impl Job {
    async fn run(&self, label: &str, progress: &mut Progress) -> anyhow::Result<()> {
        let mut display = progress::Display::new(label, progress.events, progress.total);
        let result = self.pages(&mut display, progress).await;
        display.finish();
        result
    }

    async fn pages(
        &self,
        display: &mut progress::Display,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        loop {
            let page = self
                .bootstrap
                .page(progress.cursor.as_deref(), &self.retry)
                .await?;
            if page.total.is_some() && page.total != progress.total {
                progress.total = page.total;
                display.set_total(page.total);
            }
            let chunk_size = self
                .limiter
                .as_ref()
                .map_or(page.events.len().max(1), |(_, chunk)| *chunk);
            for chunk in page.events.chunks(chunk_size) {
                if let Some((limiter, _)) = &self.limiter {
                    let n = NonZeroU32::new(chunk.len() as u32).unwrap_or(NonZeroU32::MIN);
                    display.note("(rate limit)");
                    limiter
                        .until_n_ready(n)
                        .await
                        .context("a chunk larger than the rate limit's burst")?;
                    display.note("");
                }
                self.post(chunk, progress).await?;
                progress.events += chunk.len() as u64;
                display.advance(chunk.len() as u64);
            }
            // Every event of the page is acknowledged: move the cursor on.
            progress.pages += 1;
            progress.complete = page.next_cursor.is_none();
            progress.cursor = page.next_cursor;
            self.state.save(progress)?;
            if progress.complete {
                return Ok(());
            }
        }
    }

    /// Posts `events`, halving what droid refuses as too large until it passes.
    async fn post(
        &self,
        events: &[Box<serde_json::value::RawValue>],
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        let mut pending = vec![events];
        while let Some(part) = pending.pop() {
            match self.sink.post(part, &self.retry).await {
                Ok(answer) => {
                    progress.outcomes.add(&answer);
                    report_lost(&answer, progress.pages + 1);
                }
                Err(e) if part.len() > 1 && e.downcast_ref::<sink::TooLarge>().is_some() => {
                    let (first, second) = part.split_at(part.len() / 2);
                    tracing::debug!(
                        events = part.len(),
                        "droid refused the post as too large; halving it"
                    );
                    pending.extend([second, first]);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Warns about events droid did not store and did not keep as dead letters.
fn report_lost(answer: &serde_json::Value, page: u64) {
    for (n, result) in answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if result["status"] == "invalid" {
            tracing::warn!(
                page,
                event = n,
                reason = result["reason"].as_str().unwrap_or("?"),
                "an event of the bootstrap endpoint is invalid; droid did not keep it"
            );
        }
    }
}
