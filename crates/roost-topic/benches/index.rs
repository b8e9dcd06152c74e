//! What routing one PUBLISH through the subscription index costs.
//!
//! Method: 10,000 subscribers, each on its own `tenant/<n>/+/audit` filter (the
//! per-device shape AWS policies push clients towards), plus 100 wildcard
//! filters from 100 other subscribers: 50 `tenant/+/device-<i>/#`, 49
//! `+/+/+/metric-<i>` and one `tenant/#`. The timed call routes
//! `tenant/4242/device-7/audit`, which matches three subscriptions (its tenant's
//! filter, `tenant/+/device-7/#` and `tenant/#`); the callback only counts them,
//! so the figure is the index's own cost per PUBLISH. For comparison, the same
//! topic against one filter with `matches`, what the rules engine does per rule.
//! Run: `cargo bench -p roost-topic --bench index -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use roost_topic::{matches, MatchMode, SubscriptionIndex};

const TENANTS: u32 = 10_000;
const TOPIC: &str = "tenant/4242/device-7/audit";

fn build() -> SubscriptionIndex<u32, u8> {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    for n in 0..TENANTS {
        index.insert(&format!("tenant/{n}/+/audit"), n, 1);
    }
    let mut subscriber = TENANTS;
    let mut add = |index: &mut SubscriptionIndex<u32, u8>, filter: String| {
        index.insert(&filter, subscriber, 0);
        subscriber += 1;
    };
    for i in 0..50 {
        add(&mut index, format!("tenant/+/device-{i}/#"));
    }
    for i in 0..49 {
        add(&mut index, format!("+/+/+/metric-{i}"));
    }
    add(&mut index, "tenant/#".to_string());
    index
}

fn bench(c: &mut Criterion) {
    let index = build();
    let mut count = 0;
    index.for_each_match(TOPIC, |_, _, _| count += 1);
    assert_eq!(count, 3, "the scenario's topic must match three filters");

    c.bench_function("for_each_match/10k+100 filters, 3 matches", |b| {
        b.iter(|| {
            let mut count = 0usize;
            index.for_each_match(black_box(TOPIC), |_, _, _| count += 1);
            count
        })
    });
    c.bench_function("matches/one filter", |b| {
        b.iter(|| {
            matches(
                black_box("tenant/+/+/audit"),
                black_box(TOPIC),
                MatchMode::Aws,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
