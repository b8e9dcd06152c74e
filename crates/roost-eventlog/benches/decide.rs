//! What the event log costs a connection on the publish path.
//!
//! Method: a connection's `ConnectionLevel` under a configuration with a
//! few hundred per-target levels (none of them its own), asked whether an
//! INFO event is logged: once with the default at DISABLED and once at
//! INFO (the answer the gateway gets before it builds anything). Then what
//! a logged Publish-In costs the publisher when it is logged: building the
//! event (trace id, timestamp, topic) and handing it to the queue, whose
//! other end a thread drains. Run:
//! `cargo bench -p roost-eventlog --bench decide -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use roost_eventlog::{
    ConnectionLevel, EventLog, EventType, LogLevel, LogTarget, LoggingConfig, LoggingOptions,
    Status, TargetType,
};

fn config(default: LogLevel) -> LoggingConfig {
    let mut config = LoggingConfig::new(LoggingOptions {
        default_log_level: default,
        ..Default::default()
    });
    for n in 0..300 {
        config.set_level(
            LogTarget::new(TargetType::ClientId, Some(&format!("other-{n}"))).unwrap(),
            LogLevel::Debug,
        );
    }
    config
}

fn connection() -> ConnectionLevel {
    ConnectionLevel::new(
        Some("iot-webinar-device".into()),
        Some("198.51.100.4".parse().unwrap()),
        Some("3f9a".repeat(16).into()),
        Vec::new(),
    )
}

fn decide(c: &mut Criterion) {
    for (name, default) in [("disabled", LogLevel::Disabled), ("info", LogLevel::Info)] {
        let (log, _rx) = EventLog::new("000000000000", config(default), 16);
        let conn = connection();
        conn.level(&log);
        c.bench_function(&format!("logs INFO? (default {name})"), |b| {
            b.iter(|| black_box(&conn).logs(black_box(&log), LogLevel::Info))
        });
    }
    // The level after a change: what the first event after SetV2LoggingLevel costs.
    let (log, _rx) = EventLog::new("000000000000", config(LogLevel::Info), 16);
    let conn = connection();
    c.bench_function("level after a configuration change", |b| {
        b.iter(|| {
            log.update(|_| {});
            black_box(&conn).level(black_box(&log))
        })
    });
}

fn emit(c: &mut Criterion) {
    let (log, rx) = EventLog::new("000000000000", config(LogLevel::Info), 1 << 17);
    // The drain takes events in rounds 5 ms apart, as the gateway's writer
    // does while events keep coming (so a send never has to wake it).
    let drain = std::thread::spawn(move || loop {
        loop {
            match rx.try_recv() {
                Ok(_) => {}
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    });
    // The connection's own copies, shared with each event as the gateway does.
    let conn = connection();
    let peer: std::net::SocketAddr = "198.51.100.4:50000".parse().unwrap();
    c.bench_function("build and queue a Publish-In", |b| {
        b.iter(|| {
            let mut event = log
                .event(EventType::PublishIn, Status::Success)
                .source(peer)
                .topic("iot-webinar/honeypot-1/audit");
            event.client_id = conn.client_id().cloned();
            event.principal_id = conn.principal_id().cloned();
            log.emit(event)
        })
    });
    println!(
        "queued {}, dropped {}",
        log.counters().queued(),
        log.counters().dropped()
    );
    drop(log);
    drain.join().unwrap();
}

criterion_group!(benches, decide, emit);
criterion_main!(benches);
