//! `[sources.NAME]`: the ingestion sources, each feeding an ingested record
//! type, with its rate, failure thresholds, publishers and bootstrap endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::super::raw::{RawSource, RawStream};
use super::super::{Mode, RecordTypeConfig, SourceConfig, StreamSource};
use super::{Checker, check_base_url, check_record_type_name, grants};

/// `[sources.NAME]`: each names an ingested record type.
pub(super) fn sources(
    c: &mut Checker,
    raw: BTreeMap<String, RawSource>,
    record_types: &BTreeMap<String, Arc<RecordTypeConfig>>,
) -> BTreeMap<String, SourceConfig> {
    let mut out = BTreeMap::new();
    for (name, source) in raw {
        let field = format!("sources.{name}");
        if let Err(why) = check_record_type_name(&name) {
            c.problem(&field, why.replace("record type", "source"));
        }
        let Some(record_type) = source.record_type else {
            c.problem(
                format!("{field}.record_type"),
                "required: the ingested record type this source feeds",
            );
            continue;
        };
        let mut positive = |key: &str, value: Option<u64>| {
            value.and_then(|v| {
                let n = c.in_range(&format!("{field}.{key}"), v, 1, 10_000_000);
                std::num::NonZeroU32::new(n as u32)
            })
        };
        let rate_limit = positive("rate_limit", source.rate_limit);
        let burst = positive("burst", source.burst);
        if burst.is_some() && rate_limit.is_none() {
            c.problem(
                format!("{field}.burst"),
                "a burst needs a rate_limit to go with it",
            );
        }
        let failure_window = Duration::from_secs(c.number(
            &field,
            "failure_window_s",
            source.failure_window_s,
            300,
            1,
            86_400,
        ));
        let warn_above = c.number(&field, "warn_above", source.warn_above, 0, 0, u64::MAX);
        let page_above = c.number(&field, "page_above", source.page_above, 100, 0, u64::MAX);
        if page_above < warn_above {
            c.problem(
                format!("{field}.page_above"),
                format!("must be at least warn_above ({warn_above}), found {page_above}"),
            );
        }
        let publishers =
            grants::issuers(c, &format!("{field}.publishers"), source.publishers, false);
        let bootstrap_url = source.bootstrap_url.and_then(|text| {
            check_base_url(&text)
                .map_err(|why| c.problem(format!("{field}.bootstrap_url"), why))
                .ok()
        });
        let stream = source
            .stream
            .and_then(|raw| stream_source(c, &format!("{field}.stream"), raw));
        match record_types.get(&record_type).map(|rt| (&rt.mode, rt.max_in_flight)) {
            Some((Mode::Ingested(_), type_in_flight)) => {
                let max_in_flight = c.number(
                    &field,
                    "max_in_flight",
                    source.max_in_flight.map(u64::from),
                    u64::from(type_in_flight),
                    1,
                    10_000,
                ) as u32;
                out.insert(
                    name,
                    SourceConfig {
                        record_type,
                        rate_limit,
                        burst,
                        failure_window,
                        warn_above,
                        page_above,
                        bootstrap_url,
                        publishers,
                        max_in_flight,
                        stream,
                    },
                );
            }
            Some((Mode::ReadThrough(_), _)) => c.problem(
                format!("{field}.record_type"),
                format!("record type {record_type:?} is read-through; a source feeds an ingested record type"),
            ),
            None => c.problem(
                format!("{field}.record_type"),
                format!("no record type named {record_type:?} is declared"),
            ),
        }
    }
    out
}

/// `sources.NAME.stream` (or `invalidations.stream`): where on NATS
/// JetStream the events arrive.
pub(super) fn stream_source(c: &mut Checker, field: &str, raw: RawStream) -> Option<StreamSource> {
    let mut required = |key: &str, value: Option<String>, what: &str| match value {
        Some(v) if !v.trim().is_empty() => Some(v),
        _ => {
            c.problem(format!("{field}.{key}"), format!("required: {what}"));
            None
        }
    };
    let url = required("url", raw.url, "the NATS server, as nats://host:port");
    let stream = required("stream", raw.stream, "the JetStream stream's name");
    let subject = required(
        "subject",
        raw.subject,
        "the subject events are published on",
    );
    let durable = required(
        "durable",
        raw.durable,
        "the durable consumer the nodes share",
    );
    if let Some(url) = &url {
        for server in url.split(',') {
            if server.trim().parse::<async_nats::ServerAddr>().is_err() {
                c.problem(
                    format!("{field}.url"),
                    format!("{server:?} is not a NATS server address (nats://host:port)"),
                );
            }
        }
    }
    for (key, name) in [("stream", &stream), ("durable", &durable)] {
        if let Some(name) = name
            && name
                .chars()
                .any(|ch| ch.is_whitespace() || matches!(ch, '.' | '*' | '>' | '/' | '\\'))
        {
            c.problem(
                format!("{field}.{key}"),
                format!(
                    "{name:?}: JetStream names may not hold spaces, '.', '*', '>', '/' or '\\'"
                ),
            );
        }
    }
    let batch = c.number(field, "batch", raw.batch, 500, 1, 10_000) as usize;
    let ack_wait = c.millis(
        field,
        "ack_wait_ms",
        raw.ack_wait_ms,
        Duration::from_secs(30),
        100,
        3_600_000,
    );
    Some(StreamSource {
        url: url?,
        stream: stream?,
        subject: subject?,
        durable: durable?,
        batch,
        ack_wait,
    })
}
