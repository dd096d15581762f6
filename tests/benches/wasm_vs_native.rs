//! The transformer's cost per event as a component versus compiled natively,
//! measured as paired rounds so that drift in machine speed (shared CPUs, frequency
//! changes) cancels out of the ratio: each round times a block of wasm batches and
//! then a block of native batches, and the ratio is taken per round. Cloning the
//! input and dropping the output are left out of both sides' times.
//!
//! The last column is the same batch through a transformer that does nothing: what
//! the runtime itself costs per event (instance, lowering, lifting).
//!
//! Run with `cargo bench -p droid-e2e --bench wasm_vs_native`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use droid_e2e::bench::{ingested_context, runtime, ticket_events, transformer};
use droid_e2e::plugins;
use droid_sdk::Transformer;
use ticket_transformer::TicketTransformer;

const ROUNDS: usize = 31;
const ROUND_TIME: Duration = Duration::from_millis(150);

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let runtime = runtime();
    let plugin = transformer(&runtime, plugins::TICKET_TRANSFORMER);
    let noop = transformer(&runtime, plugins::NOOP_TRANSFORMER);
    let ctx = ingested_context();

    println!(
        "ticket transformer, 300-400 byte JSON events: time per event, median of {ROUNDS} paired rounds"
    );
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>15} {:>16}",
        "batch", "wasm", "native", "ratio", "ratio range", "runtime alone"
    );
    // `cargo bench ... -- 256` measures one batch size only.
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    for size in [1usize, 16, 256]
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
    {
        let (sdk_events, host_events) = ticket_events(size);

        // Inputs are cloned and outputs dropped outside the timed span, so both
        // sides are charged for the transform alone.
        let wasm_batch = Timed {
            setup: || host_events.clone(),
            routine: |events| {
                rt.block_on(plugin.transform(&ctx, events))
                    .expect("transform")
            },
        };
        let noop_batch = Timed {
            setup: || host_events.clone(),
            routine: |events| {
                rt.block_on(noop.transform(&ctx, events))
                    .expect("transform")
            },
        };
        let native_batch = Timed {
            setup: || sdk_events.clone(),
            routine: |events: Vec<droid_sdk::SourceEvent>| {
                events
                    .into_iter()
                    .map(TicketTransformer::transform)
                    .collect::<Vec<_>>()
            },
        };
        // Warm up both paths (compiled code, pool slots, caches).
        time_per_batch(&wasm_batch, Duration::from_millis(300));
        time_per_batch(&native_batch, Duration::from_millis(300));

        let mut wasm = Vec::new();
        let mut native = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..ROUNDS {
            let w = time_per_batch(&wasm_batch, ROUND_TIME) / size as f64;
            let n = time_per_batch(&native_batch, ROUND_TIME) / size as f64;
            wasm.push(w);
            native.push(n);
            ratios.push(w / n);
        }
        let mut runtime_alone: Vec<f64> = (0..5)
            .map(|_| time_per_batch(&noop_batch, ROUND_TIME) / size as f64)
            .collect();
        let (lo, hi) = (min(&ratios), max(&ratios));
        println!(
            "{size:>6} {:>9.2} µs {:>9.2} µs {:>7.2}x {:>7.2}-{:.2}x {:>13.2} µs",
            median(&mut wasm) * 1e6,
            median(&mut native) * 1e6,
            median(&mut ratios),
            lo,
            hi,
            median(&mut runtime_alone) * 1e6
        );
    }
}

/// A measured routine and the untimed set-up of its input.
struct Timed<S, R> {
    setup: S,
    routine: R,
}

/// Seconds per call of the routine, over as many calls as fit in `budget`.
fn time_per_batch<I, O>(t: &Timed<impl Fn() -> I, impl Fn(I) -> O>, budget: Duration) -> f64 {
    let started = Instant::now();
    let mut measured = Duration::ZERO;
    let mut n = 0u32;
    while started.elapsed() < budget {
        let input = (t.setup)();
        let call = Instant::now();
        let output = black_box((t.routine)(input));
        measured += call.elapsed();
        drop(output);
        n += 1;
    }
    measured.as_secs_f64() / f64::from(n)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}
