//! Render throughput per format (bodies/s), on the sample events. Bodies are rendered once
//! per delivery at fan-out, inside the fan-out transaction, so this bounds how many
//! deliveries per second one core can prepare.
//!
//! Run: `cargo bench --bench formats` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quick look).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use herald::domain::event_type::EventType;
use herald::formats::template::Template;
use herald::formats::{render, samples, Format, RenderContext};

/// The most representative event of each format: a project update with field changes for
/// PPM, Projectrak and standard; a story state change for Tracker.
fn event_for(format: Format) -> EventType {
    match format {
        Format::TrackerV5 => EventType::STORY_UPDATED,
        _ => EventType::PROJECT_UPDATED,
    }
}

fn render_per_format(c: &mut Criterion) {
    let ctx = samples::context();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    for format in Format::ALL {
        let event = samples::event(event_for(format));
        group.bench_function(format.as_str(), |b| {
            b.iter(|| render(black_box(format), black_box(&event), &ctx))
        });
    }
    // Every sample in every format it supports: the average body.
    let all = samples::all();
    let pairs: Vec<_> = Format::ALL
        .iter()
        .flat_map(|f| {
            all.iter()
                .filter(|e| f.supports(e.event_type))
                .map(move |e| (*f, e))
        })
        .collect();
    group.throughput(Throughput::Elements(pairs.len() as u64));
    group.bench_function("all-samples", |b| {
        b.iter(|| {
            for (f, e) in &pairs {
                black_box(render(*f, e, &ctx));
            }
        })
    });
    group.finish();
}

/// One event for ten webhooks of one format, as fan-out prepares it: ten renders, against
/// one [`Template`] and ten copies with each webhook's ids written in.
fn fan_out_of_ten(c: &mut Criterion) {
    let ctx = samples::context();
    let ids: Vec<_> = (0..10)
        .map(|_| (uuid::Uuid::now_v7(), uuid::Uuid::now_v7()))
        .collect();
    let mut group = c.benchmark_group("fan-out-of-10");
    group.throughput(Throughput::Elements(ids.len() as u64));
    for format in [Format::Ppm, Format::Standard] {
        let event = samples::event(event_for(format));
        group.bench_function(format!("{}/render-each", format.as_str()), |b| {
            b.iter(|| {
                for (w, d) in &ids {
                    let ctx = RenderContext {
                        webhook_id: *w,
                        delivery_id: *d,
                        public_base_url: ctx.public_base_url,
                    };
                    black_box(render(format, black_box(&event), &ctx));
                }
            })
        });
        group.bench_function(format!("{}/template", format.as_str()), |b| {
            b.iter(|| {
                let t = Template::new(format, black_box(&event), ctx.public_base_url).unwrap();
                for (w, d) in &ids {
                    black_box(t.instantiate(*w, *d));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render_per_format, fan_out_of_ten);
criterion_main!(benches);
