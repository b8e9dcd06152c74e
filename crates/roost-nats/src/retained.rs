//! Retained messages in the KV bucket `<prefix>-retained`, one key per
//! topic ([`roost_cluster::key`]), so that a node started later (or
//! restarted after the cluster's retained messages changed) has them.
//!
//! Every node keeps the retained messages it routes, as before; the bucket
//! is what a node starts from. The node that accepted a retained message
//! writes it (a QoS 1 one once JetStream stored it), in order, from one
//! task; an empty payload deletes the key. A value is the time it was set
//! (8 bytes, Unix ms, big-endian) then the message as it travels between
//! nodes ([`crate::envelope`]); a message expiry counts from that time.

use crate::envelope::{self, EnvelopeError};
use crate::stored::{self, StoreError};
use crate::LinkCounters;
use async_nats::jetstream::{self, kv};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use roost_broker::cluster::Confirmation;
use roost_broker::{Broker, Message};
use roost_cluster::SubjectSpace;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Retained changes waiting for the bucket; past it they are counted as
/// failed writes.
pub const QUEUE_CAPACITY: usize = 4096;

/// One retained change for the bucket: the topic's new message (an empty
/// payload deletes it), when it was set, and, for a QoS 1/2 message, the
/// stream's verdict to wait for.
pub(crate) struct Change {
    pub message: Arc<Message>,
    pub set_at: i64,
    pub stored: Option<Arc<Confirmation>>,
}

/// Finds or creates the bucket.
pub(crate) async fn open(
    js: &jetstream::Context,
    space: &SubjectSpace,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    stored::bucket(js, &space.resource_name("retained"), replicas).await
}

/// A bucket value for `message` set at `set_at`; `None` once it expired.
pub(crate) fn value(message: &Message, set_at: i64, now: Instant) -> Option<Bytes> {
    let body = envelope::encode(message, now).ok()??;
    let mut value = BytesMut::with_capacity(8 + body.len());
    value.put_i64(set_at);
    value.put_slice(&body);
    Some(value.freeze())
}

/// The message a bucket value holds for `topic`, with when it was set;
/// `Ok(None)` once its expiry passed (counted from `set_at`; `now_ms` is
/// the wall clock at `now`).
pub(crate) fn read(
    space: &SubjectSpace,
    topic: &str,
    value: &[u8],
    now_ms: i64,
    now: Instant,
) -> Result<Option<(Message, i64)>, EnvelopeError> {
    let (set_at, body) = match value.split_first_chunk::<8>() {
        Some((set_at, body)) => (i64::from_be_bytes(*set_at), body),
        None => return Err(EnvelopeError::Body("a value shorter than its time".into())),
    };
    let subject = space.topic_subject(topic)?;
    let mut message = match envelope::decode(space, &subject, body, now) {
        Ok(message) => message,
        Err(EnvelopeError::Expired) => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Some(expires_at) = message.expires_at {
        let elapsed =
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(set_at)).unwrap_or(0));
        match expires_at.checked_sub(elapsed).filter(|at| *at > now) {
            Some(at) => message.expires_at = Some(at),
            None => return Ok(None),
        }
    }
    Ok(Some((message, set_at)))
}

/// Puts the bucket's retained messages into `broker` (before it serves);
/// returns how many. Unreadable values are skipped and logged.
pub(crate) async fn load(
    bucket: &kv::Store,
    space: &SubjectSpace,
    broker: &Broker,
) -> Result<u64, StoreError> {
    let failed = |why: String| StoreError::Bucket {
        name: bucket.name.clone(),
        why,
    };
    let mut keys = bucket.keys().await.map_err(|e| failed(e.to_string()))?;
    let mut loaded = 0;
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| failed(e.to_string()))?;
        let Some(value) = bucket.get(&key).await.map_err(|e| failed(e.to_string()))? else {
            continue; // deleted meanwhile
        };
        let read = roost_cluster::unkey(&key)
            .map_err(EnvelopeError::Subject)
            .and_then(|topic| read(space, &topic, &value, stored::unix_now_ms(), Instant::now()));
        match read {
            Ok(Some((message, set_at))) => {
                broker.restore_retained_from_cluster(message, set_at);
                loaded += 1;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%key, %error, "skipped a retained message the cluster's bucket holds")
            }
        }
    }
    Ok(loaded)
}

/// Writes the retained changes this node accepted, in order, until
/// `shutdown` (what is queued then is written first).
pub(crate) async fn write(
    bucket: kv::Store,
    mut changes: mpsc::Receiver<Change>,
    counters: Arc<LinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Once stopping, what is queued gets SHUTDOWN_GRACE (NATS may be gone).
    let mut queue = crate::UntilStopped::new(&mut changes, &mut shutdown);
    while let Some(change) = queue.next().await {
        // A QoS 1 message JetStream refused (or never decided on: the
        // link stopped) was refused to its publisher: it is retained
        // nowhere.
        if let Some(stored) = &change.stored {
            let decided = tokio::time::timeout(VERDICT_WAIT, stored.done()).await;
            if decided != Ok(true) {
                continue;
            }
        }
        let key = roost_cluster::key(&change.message.topic);
        let written = if change.message.payload.is_empty() {
            bucket.delete(&key).await.map_err(|e| e.to_string())
        } else {
            match value(&change.message, change.set_at, Instant::now()) {
                Some(value) => bucket
                    .put(&key, value)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                // Expired before it was written: nobody may receive it.
                None => bucket.delete(&key).await.map_err(|e| e.to_string()),
            }
        };
        match written {
            Ok(()) => counters.retained_writes.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                tracing::warn!(topic = %change.message.topic, %error, "a retained message was not written to the cluster's bucket");
                counters
                    .retained_write_failures
                    .fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// How long a retained QoS 1 message waits for the stream's verdict (its
/// store gives up after `stored::STORE_TIMEOUT`).
const VERDICT_WAIT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use roost_mqtt::QoS;

    fn space() -> SubjectSpace {
        SubjectSpace::new("roost").unwrap()
    }

    #[test]
    fn a_value_reads_back_with_its_time_and_what_is_left_of_its_expiry() {
        let now = Instant::now();
        let mut message = Message::new("config/$dev/a.b", &b"{}"[..], QoS::AtLeastOnce);
        message.retain = true;
        message.properties.content_type = Some("application/json".into());
        message.expires_at = Some(now + Duration::from_secs(60));
        let set_at = 1_700_000_000_000;
        let value = value(&message, set_at, now).unwrap();
        // Read back 20 s after it was set: 40 s are left.
        let (back, at) = read(&space(), &message.topic, &value, set_at + 20_000, now)
            .unwrap()
            .unwrap();
        assert_eq!(at, set_at);
        assert_eq!(
            (back.topic.as_str(), &back.payload[..]),
            ("config/$dev/a.b", &b"{}"[..])
        );
        assert!(back.retain);
        assert_eq!(
            back.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(back.expires_at, Some(now + Duration::from_secs(40)));
        // Read back after its expiry: gone.
        assert!(read(&space(), &message.topic, &value, set_at + 61_000, now)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_message_without_expiry_never_expires_in_the_bucket() {
        let now = Instant::now();
        let message = Message::new("t", &b"x"[..], QoS::AtMostOnce);
        let value = value(&message, 5, now).unwrap();
        let (back, _) = read(&space(), "t", &value, i64::MAX, now).unwrap().unwrap();
        assert_eq!(back.expires_at, None);
    }

    #[test]
    fn a_bad_value_is_an_error_not_a_message() {
        let now = Instant::now();
        assert!(read(&space(), "t", b"short", 0, now).is_err());
        let value = value(&Message::new("t", &b"x"[..], QoS::AtMostOnce), 0, now).unwrap();
        // Another topic's key: the body does not match.
        assert!(read(&space(), "u", &value, 0, now).is_err());
        let mut garbage = value.to_vec();
        garbage.truncate(10);
        assert!(read(&space(), "t", &garbage, 0, now).is_err());
    }
}
