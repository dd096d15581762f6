//! A provider's backing store for the quickstart and the load scripts.
//!
//! It serves a few hundred tenant-site records under `GET /sites/{key}` following
//! droid's read-through contract: `200` with the JSON record, `404` for an unknown
//! key. The records are generated from a fixed seed, so every run serves the same
//! data. `--latency-ms` makes it answer slower, as a real store in another service
//! would; nothing else about it is configurable, on purpose.
//!
//! It also plays the ticket tracker's bootstrap endpoint
//! (`GET /tickets/bootstrap`, see [`tickets`]) for `droid backfill ticket`,
//! and, as `sample-provider publish`, the tracker publishing its events to
//! NATS JetStream (see [`publish`]).

mod publish;
mod tickets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Sample backing store for droid's read-through quickstart")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// How many site records to serve.
    #[arg(long, default_value_t = 300)]
    records: usize,
    /// Delay added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Pad every record with a field of this many bytes (for memory benchmarks).
    #[arg(long, default_value_t = 0)]
    pad_bytes: usize,
    /// How many tickets the tracker's bootstrap endpoint pages through.
    #[arg(long, default_value_t = 2_000)]
    tickets: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Publish events (JSON lines) to a NATS JetStream stream and exit.
    Publish(publish::Publish),
}

#[derive(Debug)]
struct Sites {
    by_key: HashMap<String, String>,
    latency: Duration,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(Command::Publish(publish)) = args.command {
        return publish::run(publish).await;
    }
    let sites = Arc::new(Sites {
        by_key: generate(args.records, args.pad_bytes),
        latency: Duration::from_millis(args.latency_ms),
    });
    let app = Router::new()
        .route("/sites/{key}", get(site))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(sites.clone())
        .merge(
            Router::new()
                .route("/tickets/bootstrap", get(tickets::bootstrap))
                .with_state(tickets::Tickets(args.tickets)),
        );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "sample provider: {} sites on http://{}/sites/{{key}} (for example site-{:0width$})",
        sites.by_key.len(),
        listener.local_addr()?,
        1,
        width = args.records.to_string().len().max(4)
    );
    axum::serve(listener, app).await?;
    Ok(())
}

async fn site(State(sites): State<Arc<Sites>>, Path(key): Path<String>) -> Response {
    if !sites.latency.is_zero() {
        tokio::time::sleep(sites.latency).await;
    }
    match sites.by_key.get(&key) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

const COMPANIES: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Monarch",
    "Aperture",
    "Nakatomi",
    "Massive Dynamic",
    "Pied Piper",
    "Dunder Mifflin",
];
const SUFFIXES: &[&str] = &[
    "Labs",
    "Group",
    "Systems",
    "Logistics",
    "Health",
    "Bank",
    "Studios",
    "Energy",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
];
const PLANS: &[&str] = &["free", "standard", "premium", "enterprise"];
const PRODUCTS: &[&str] = &["tickets", "wiki", "chat", "boards", "status", "forms"];
const TEAMS: &[&str] = &[
    "platform", "identity", "billing", "growth", "search", "mobile",
];

/// Builds `count` records from a fixed linear-congruential sequence: realistic
/// variety, identical on every run. Keys are `site-` and a zero-padded number of
/// at least four digits (`site-0001`, or `site-00001` for ten thousand records).
fn generate(count: usize, pad_bytes: usize) -> HashMap<String, String> {
    let width = count.to_string().len().max(4);
    let mut seed: u64 = 0x5eed_d201d;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    (1..=count)
        .map(|i| {
            let key = format!("site-{i:0width$}");
            let company = format!("{} {}", COMPANIES[next(COMPANIES.len())], SUFFIXES[next(SUFFIXES.len())]);
            let slug = company.to_lowercase().replace(' ', "-");
            let products: Vec<&str> = PRODUCTS.iter().copied().filter(|_| next(2) == 0).collect();
            let mut body = json!({
                "site_id": key,
                "tenant": format!("tenant-{:04}", i / 3 + 1),
                "name": company,
                "hostname": format!("{slug}-{i}.example.net"),
                "region": REGIONS[next(REGIONS.len())],
                "plan": PLANS[next(PLANS.len())],
                "products": products,
                "seats": 5 + next(5000),
                "owner_team": TEAMS[next(TEAMS.len())],
                "created_at": format!("20{:02}-{:02}-{:02}T{:02}:{:02}:00Z", 18 + next(8), 1 + next(12), 1 + next(28), next(24), next(60)),
                "version": 1 + next(40),
            });
            if pad_bytes > 0 {
                body["padding"] = json!("p".repeat(pad_bytes));
            }
            (key, body.to_string())
        })
        .collect()
}
