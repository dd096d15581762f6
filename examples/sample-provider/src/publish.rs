//! `sample-provider publish`: the tracker publishing its events to a NATS
//! JetStream stream, as a provider on a fleet does, instead of posting them
//! to droid. Creates the stream when it is missing; each line of the events
//! file is one message, acknowledged by JetStream before the next batch.

use std::path::PathBuf;

/// Where to publish what.
#[derive(Debug, clap::Args)]
pub struct Publish {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The stream (created with `SUBJECT`'s prefix when missing).
    #[arg(long, default_value = "EVENTS")]
    stream: String,
    /// The subject events go to.
    #[arg(long, default_value = "events.tracker")]
    subject: String,
    /// The events, one JSON object per line.
    events: PathBuf,
}

pub async fn run(args: Publish) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.events)?;
    let client = async_nats::connect(args.nats.as_str()).await?;
    let jetstream = async_nats::jetstream::new(client);
    let wildcard = match args.subject.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.>"),
        None => args.subject.clone(),
    };
    jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: args.stream.clone(),
            subjects: vec![wildcard],
            ..Default::default()
        })
        .await?;
    let mut acks = Vec::new();
    let mut published = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        acks.push(
            jetstream
                .publish(args.subject.clone(), line.to_owned().into())
                .await?,
        );
        published += 1;
        if acks.len() == 500 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    println!(
        "sample provider: published {published} events to {} on stream {} at {}",
        args.subject, args.stream, args.nats
    );
    Ok(())
}
