use super::plan::Plan;
use super::*;
use crate::journal::Op;
use crate::message::unix_ms;
use bytes::Bytes;
use roost_mqtt::{PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionOptions};
use std::time::{Instant, SystemTime};

fn outgoing(seq: u64, topic: &str) -> Outgoing {
    Outgoing {
        message: Arc::new(Message::new(topic, &b"payload"[..], QoS::AtLeastOnce)),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        dup: false,
        seq,
    }
}

fn queued(session: u64, seq: u64) -> Op {
    Op::Queued {
        session,
        outgoing: outgoing(seq, &format!("t/{seq}")),
    }
}

fn session(id: u64, client_id: &str, disconnected_at: Option<i64>) -> Op {
    Op::Session {
        id,
        client_id: client_id.into(),
        expiry_secs: 3600,
        disconnected_at,
    }
}

fn retained(topic: &str, payload: &'static [u8]) -> Op {
    let mut message = Message::new(topic, payload, QoS::AtLeastOnce);
    message.retain = true;
    Op::Retained {
        message: Arc::new(message),
        set_at: 1,
    }
}

#[test]
fn a_batch_keeps_only_what_outlives_it() {
    let plan = Plan::of(&[
        session(1, "a", None),
        queued(1, 1),
        queued(1, 2),
        queued(1, 3),
        Op::Sent { session: 1, seq: 1 },
        Op::Done { session: 1, seq: 1 },
        Op::Sent { session: 1, seq: 2 },
        // Rows committed by earlier batches.
        Op::Sent { session: 1, seq: 0 },
        Op::Sent { session: 2, seq: 7 },
        Op::Done { session: 2, seq: 7 },
    ]);
    assert_eq!(
        plan.queued.keys().copied().collect::<Vec<_>>(),
        [(1, 2), (1, 3)]
    );
    assert!(
        plan.queued[&(1, 2)].dup,
        "queued and sent: written with DUP"
    );
    assert!(!plan.queued[&(1, 3)].dup);
    assert_eq!(plan.sent.iter().copied().collect::<Vec<_>>(), [(1, 0)]);
    assert_eq!(plan.done.iter().copied().collect::<Vec<_>>(), [(2, 7)]);
    assert_eq!(plan.sessions[&1].disconnected_at, None);
}

#[test]
fn an_ended_session_takes_its_changes_with_it_and_last_changes_win() {
    let plan = Plan::of(&[
        session(1, "a", None),
        Op::Subscribed {
            session: 1,
            filter: "x/#".into(),
            subscription: Subscription {
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                identifier: None,
            },
        },
        queued(1, 1),
        Op::Done { session: 1, seq: 0 },
        Op::SessionEnded { id: 1 },
        session(2, "a", None),
        session(2, "a", Some(5)),
        Op::Subscribed {
            session: 2,
            filter: "y".into(),
            subscription: Subscription {
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                identifier: None,
            },
        },
        Op::Unsubscribed {
            session: 2,
            filter: "y".into(),
        },
        retained("r", b"one"),
        retained("r", b""),
        retained("s", b"two"),
    ]);
    assert_eq!(plan.ended.iter().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(plan.sessions.keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(plan.sessions[&2].disconnected_at, Some(5));
    assert_eq!(
        plan.subscriptions.iter().collect::<Vec<_>>(),
        [(&(2, "y".to_string()), &None)]
    );
    assert!(plan.queued.is_empty() && plan.done.is_empty());
    assert!(plan.retained["r"].0.payload.is_empty());
    assert_eq!(plan.retained["s"].0.payload.as_ref(), b"two");
}

async fn open(dir: &tempfile::TempDir) -> BrokerStore {
    BrokerStore::open(&dir.path().join(BrokerStore::FILE), StateSync::Normal)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_store_reads_back_what_batches_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut properties = PublishProperties {
        content_type: Some("text/plain".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01")),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    let mut with_properties = outgoing(3, "t/3");
    with_properties.subscription_ids = vec![1, 268_435_455];
    Arc::get_mut(&mut with_properties.message)
        .unwrap()
        .properties = properties.clone();
    store
        .apply(&[
            session(4, "alive", None),
            Op::Subscribed {
                session: 4,
                filter: "t/#".into(),
                subscription: Subscription {
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                    identifier: Some(268_435_455),
                },
            },
            queued(4, 1),
            queued(4, 2),
            Op::Queued {
                session: 4,
                outgoing: with_properties,
            },
            session(9, "gone", Some(1)),
            queued(9, 1),
            retained("r/1", b"kept"),
            retained("r/2", b"cleared later"),
        ])
        .await
        .unwrap();
    store
        .apply(&[
            Op::Sent { session: 4, seq: 1 },
            Op::Done { session: 4, seq: 2 },
            queued(4, 4),
            Op::SessionEnded { id: 9 },
            retained("r/2", b""),
            // A row left by a session a takeover replaced: the newest wins.
            session(3, "alive", Some(1)),
            queued(3, 1),
        ])
        .await
        .unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.sessions.len(), 1);
    let s = &loaded.sessions[0];
    assert_eq!((s.id, s.client_id.as_str()), (4, "alive"));
    assert!(
        s.disconnected_at > 0,
        "connected at the stop: disconnected at the start"
    );
    assert_eq!(s.subscriptions.len(), 1);
    assert!(s.subscriptions[0].1.options.no_local);
    assert_eq!(
        s.subscriptions[0].1.options.retain_handling,
        RetainHandling::DoNotSend
    );
    assert_eq!(s.subscriptions[0].1.identifier, Some(268_435_455));
    let seqs: Vec<_> = s.messages.iter().map(|o| (o.seq, o.dup)).collect();
    assert_eq!(seqs, [(1, true), (3, false), (4, false)]);
    assert_eq!(s.messages[1].subscription_ids, [1, 268_435_455]);
    assert!(s.messages[0].subscription_ids.is_empty());
    let p = &s.messages[1].message.properties;
    assert_eq!(p.content_type, properties.content_type);
    assert_eq!(p.correlation_data, properties.correlation_data);
    assert_eq!(p.user_properties, properties.user_properties);
    assert_eq!(p.payload_format_indicator, Some(PayloadFormat::Utf8));
    let topics: Vec<_> = loaded
        .retained
        .iter()
        .map(|(m, _)| m.topic.as_str())
        .collect();
    assert_eq!(topics, ["r/1"]);
    // The clean-up was written: the file no longer has the dead rows.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_messages")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn expired_sessions_and_messages_are_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut expired = outgoing(2, "t/2");
    Arc::get_mut(&mut expired.message).unwrap().expires_at =
        Some(Instant::now() - Duration::from_secs(1));
    store
        .apply(&[
            Op::Session {
                id: 1,
                client_id: "old".into(),
                expiry_secs: 60,
                disconnected_at: Some(unix_ms(SystemTime::now()) - 61_000),
            },
            queued(1, 1),
            session(2, "fresh", Some(unix_ms(SystemTime::now()))),
            queued(2, 1),
            Op::Queued {
                session: 2,
                outgoing: expired,
            },
        ])
        .await
        .unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.sessions.len(), 1);
    assert_eq!(loaded.sessions[0].client_id, "fresh");
    assert_eq!(loaded.sessions[0].messages.len(), 1);
}

#[tokio::test]
async fn the_first_version_s_snapshot_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BrokerStore::FILE);
    {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        // Only the first migration, as the previous version left it.
        let first = &MIGRATOR.migrations[0];
        sqlx::raw_sql(&first.sql).execute(&pool).await.unwrap();
        sqlx::query(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, 1, ?, 0)")
            .bind(first.version)
            .bind(&*first.description)
            .bind(&*first.checksum)
            .execute(&pool)
            .await
            .unwrap();
        let now = unix_ms(SystemTime::now());
        sqlx::query("INSERT INTO sessions VALUES ('dev', 3600, ?, ?)")
            .bind(now)
            .bind(r#"[{"filter":"a/#","qos":1,"no_local":false,"retain_as_published":true,"retain_handling":0}]"#)
            .execute(&pool)
            .await
            .unwrap();
        for seq in 0..3i64 {
            sqlx::query(
                "INSERT INTO session_messages VALUES ('dev', ?, ?, x'00', 1, 0, ?, '{}', NULL)",
            )
            .bind(seq)
            .bind(format!("a/{seq}"))
            .bind(seq == 0)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let store = open(&dir).await;
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.sessions.len(), 1);
    let s = &loaded.sessions[0];
    assert_eq!(s.client_id, "dev");
    assert_eq!(s.subscriptions.len(), 1);
    assert!(s.subscriptions[0].1.options.retain_as_published);
    let topics: Vec<_> = s
        .messages
        .iter()
        .map(|o| (o.message.topic.as_str(), o.seq, o.dup))
        .collect();
    assert_eq!(
        topics,
        [("a/0", 1, true), ("a/1", 2, false), ("a/2", 3, false)]
    );
}
