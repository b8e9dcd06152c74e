//! Connections of a node that is gone, ended by another node as their own
//! would have ended them: the disconnected lifecycle event
//! (`CONNECTION_LOST`) and the will.
//!
//! Each node keeps a record of every live connection in the session bucket
//! (key `conn.<client id escaped>`, which no session record's key can be:
//! those have no `.`), written after the CONNACK and removed once the
//! connection ended here (its will sent or discarded); one task writes
//! them in order. A record names the node's run (a fresh id at each
//! start), which the node's heartbeat (`node.<id>`, every second) carries.
//! Every node watches the heartbeats: a run whose heartbeat has not moved
//! for [`GONE_AFTER`] (killed, or cut off from NATS), or that no heartbeat
//! carried since this node started, is gone. Then each node goes through
//! the records of gone runs and takes each with a compare-and-set delete:
//! the one node that takes it ends the connection. A record is keyed by
//! client id: a client that reconnected elsewhere replaced it, and its
//! old connection's will is not sent (it is back).

use crate::envelope;
use crate::stored::Stored;
use crate::LinkCounters;
use async_nats::jetstream::kv;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use roost_broker::cluster::ConnectionRecord;
use roost_broker::Broker;
use roost_cluster::SubjectSpace;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Connection changes waiting for the bucket; past it they are counted as
/// failed writes.
pub const QUEUE_CAPACITY: usize = 4096;

/// How long a run's heartbeat may stand still before its node is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(5);

/// Keys of connection records start with this.
const PREFIX: &str = "conn.";

/// What the link queues for the writer.
pub(crate) enum Change {
    /// Boxed: a record with its will is large, a closing is not.
    Opened(Box<ConnectionRecord>),
    /// The connection (client id, this node's connection id) ended here.
    Closed(String, u64),
}

/// A record's first line (JSON); the will's envelope follows, if any.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Header {
    node: String,
    run: String,
    conn: u64,
    session: String,
    principal: String,
    #[serde(default)]
    source_ip: Option<IpAddr>,
    /// Present when the connection has a will (its envelope follows).
    #[serde(default)]
    will_delay_secs: Option<u64>,
    #[serde(default)]
    will_topic: Option<String>,
}

fn key(client_id: &str) -> String {
    format!("{PREFIX}{}", roost_cluster::key(client_id))
}

/// The bucket value of a connection record of `node`'s `run`.
fn encode(record: &ConnectionRecord, node: &str, run: &str, now: Instant) -> Option<Bytes> {
    let will = match &record.will {
        Some((message, delay)) => Some((envelope::encode(message, now).ok()??, delay.as_secs())),
        None => None,
    };
    let header = Header {
        node: node.to_string(),
        run: run.to_string(),
        conn: record.conn_id,
        session: record.session_identifier.clone(),
        principal: record.principal.clone(),
        source_ip: record.source_ip,
        will_delay_secs: will.as_ref().map(|(_, delay)| *delay),
        will_topic: record.will.as_ref().map(|(m, _)| m.topic.clone()),
    };
    let mut value = BytesMut::from(serde_json::to_vec(&header).ok()?.as_slice());
    value.extend_from_slice(b"\n");
    if let Some((body, _)) = will {
        value.extend_from_slice(&body);
    }
    Some(value.freeze())
}

/// The record a value holds under `key`, with its run.
fn decode(
    space: &SubjectSpace,
    key: &str,
    value: &[u8],
    now: Instant,
) -> Result<(String, ConnectionRecord), String> {
    let client_id = key
        .strip_prefix(PREFIX)
        .ok_or("not a connection record")
        .and_then(|k| roost_cluster::unkey(k).map_err(|_| "a key that is not escaped"))?;
    let split = value
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let header: Header = serde_json::from_slice(&value[..split]).map_err(|e| e.to_string())?;
    let body = &value[split + 1..];
    let will = match header.will_delay_secs {
        None => None,
        Some(delay) => {
            let topic = header
                .will_topic
                .as_deref()
                .ok_or("a will without its topic")?;
            let subject = space.topic_subject(topic).map_err(|e| e.to_string())?;
            let mut message =
                envelope::decode(space, &subject, body, now).map_err(|e| e.to_string())?;
            // Its expiry counts from when it is sent.
            message.expires_at = None;
            message.publisher = Some(client_id.clone());
            message.principal = Some(header.principal.clone());
            Some((message, Duration::from_secs(delay)))
        }
    };
    Ok((
        header.run,
        ConnectionRecord {
            client_id,
            conn_id: header.conn,
            session_identifier: header.session,
            principal: header.principal,
            source_ip: header.source_ip,
            will,
        },
    ))
}

/// Writes this node's connection records, in order, until `shutdown`;
/// then, once the connections have had a moment to close, removes what
/// is left of its own (a stopping node ended them itself).
pub(crate) async fn write(
    stored: Arc<Stored>,
    mut changes: mpsc::Receiver<Change>,
    counters: Arc<LinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let bucket = stored.sessions.clone();
    // Client id → (connection id, the revision its record was written at).
    let mut mine: HashMap<String, (u64, u64)> = HashMap::new();
    // Once stopping, the connections get SHUTDOWN_GRACE to close (NATS may
    // be gone); what is left of this node's records is then removed.
    let mut queue = crate::UntilStopped::new(&mut changes, &mut shutdown);
    while let Some(change) = queue.next().await {
        match change {
            Change::Opened(record) => {
                let Some(value) = encode(&record, &stored.node_id, &stored.run, Instant::now())
                else {
                    counters
                        .connection_record_failures
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match bucket.put(key(&record.client_id), value).await {
                    Ok(revision) => {
                        mine.insert(record.client_id.clone(), (record.conn_id, revision));
                    }
                    Err(error) => {
                        tracing::warn!(client_id = %record.client_id, %error, "a connection was not recorded in the cluster: if this node dies, its will and disconnection are not sent");
                        counters
                            .connection_record_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Change::Closed(client_id, conn_id) => {
                if let Some(&(conn, revision)) = mine.get(&client_id) {
                    if conn == conn_id {
                        mine.remove(&client_id);
                        remove(&bucket, &client_id, revision, &counters).await;
                    }
                }
            }
        }
    }
    let leftovers = async {
        for (client_id, (_, revision)) in mine {
            remove(&bucket, &client_id, revision, &counters).await;
        }
    };
    if tokio::time::timeout(crate::SHUTDOWN_GRACE, leftovers)
        .await
        .is_err()
    {
        tracing::warn!("this node's connection records were not all removed: the other nodes will end those connections again (disconnected events, wills)");
    }
}

/// Removes a record of this node's, unless something else replaced it
/// (the client reconnected elsewhere: not an error).
async fn remove(bucket: &kv::Store, client_id: &str, revision: u64, counters: &LinkCounters) {
    if let Err(error) = bucket
        .delete_expect_revision(key(client_id), Some(revision))
        .await
    {
        if error.kind() != kv::DeleteErrorKind::WrongLastRevision {
            tracing::warn!(%client_id, %error, "a closed connection's record was not removed from the cluster");
            counters
                .connection_record_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Which runs are gone, by their heartbeats as this node saw them.
struct Runs {
    own: String,
    started: Instant,
    /// When each run's heartbeat last moved (this node's clock).
    seen: HashMap<String, Instant>,
    /// Runs already gone through.
    ended: HashSet<String>,
}

impl Runs {
    fn heard(&mut self, run: String, now: Instant) {
        self.ended.remove(&run);
        self.seen.insert(run, now);
    }

    fn gone(&self, run: &str, now: Instant) -> bool {
        run != self.own
            && match self.seen.get(run) {
                Some(at) => now.duration_since(*at) > GONE_AFTER,
                None => now.duration_since(self.started) > GONE_AFTER,
            }
    }

    /// Runs that are gone and not gone through yet.
    fn newly_gone(&self, now: Instant) -> Vec<String> {
        self.seen
            .keys()
            .filter(|run| !self.ended.contains(*run) && self.gone(run, now))
            .cloned()
            .collect()
    }
}

/// Watches the heartbeats and ends the connections of gone runs, until
/// `shutdown`. Returns an error when the watch broke (started again).
pub(crate) async fn end_gone(
    stored: Arc<Stored>,
    broker: Broker,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut beats = stored
        .sessions
        .watch_with_history("node.*")
        .await
        .map_err(|e| e.to_string())?;
    let mut runs = Runs {
        own: stored.run.clone(),
        started: Instant::now(),
        seen: HashMap::new(),
        ended: HashSet::new(),
    };
    let mut first_pass = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        // (The shutdown's guard must not live across the awaits below.)
        let beat = tokio::select! {
            // Heartbeats first: a tick must not find a run gone whose
            // heartbeat is waiting unread.
            biased;
            beat = beats.next() => Some(beat),
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            _ = tick.tick() => None,
        };
        match beat {
            Some(Some(Ok(entry))) => {
                if entry.operation == kv::Operation::Put {
                    runs.heard(
                        String::from_utf8_lossy(&entry.value).into_owned(),
                        Instant::now(),
                    );
                }
                continue;
            }
            Some(Some(Err(e))) => return Err(e.to_string()),
            Some(None) => return Err("the heartbeat watch ended".into()),
            None => {}
        }
        // Only while this node's own heartbeats are stored, for long
        // enough that the others' would have been seen too: when
        // JetStream is down, every run looks still.
        if stored.answering_for().is_none_or(|d| d <= GONE_AFTER) {
            continue;
        }
        let now = Instant::now();
        let gone = runs.newly_gone(now);
        if gone.is_empty() && !(first_pass && now.duration_since(runs.started) > GONE_AFTER) {
            continue;
        }
        first_pass = false;
        end_connections_of_gone_runs(&stored, &broker, &runs, now).await?;
        runs.ended.extend(gone);
    }
}

/// Takes every record of a gone run and ends its connection.
async fn end_connections_of_gone_runs(
    stored: &Arc<Stored>,
    broker: &Broker,
    runs: &Runs,
    now: Instant,
) -> Result<(), String> {
    let bucket = &stored.sessions;
    let mut keys = bucket.keys().await.map_err(|e| e.to_string())?;
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        if !key.starts_with(PREFIX) {
            continue;
        }
        let Ok(Some(entry)) = bucket.entry(key.as_str()).await else {
            continue;
        };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let (run, record) = match decode(&stored.space, &key, &entry.value, now) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(%key, %error, "skipped a connection record that is not Roost's");
                continue;
            }
        };
        if !runs.gone(&run, now) {
            continue;
        }
        // The one node whose delete succeeds ends it.
        if bucket
            .delete_expect_revision(&key, Some(entry.revision))
            .await
            .is_err()
        {
            continue;
        }
        stored
            .counters
            .lost_connections_ended
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(client_id = %record.client_id, "ending a connection whose node is gone");
        let (broker, bucket) = (broker.clone(), bucket.clone());
        tokio::spawn(async move {
            broker.announce_lost_connection(&record);
            if let Some((_, delay)) = &record.will {
                tokio::time::sleep(*delay).await;
                // Back meanwhile (a record of a new connection): no will.
                let back = matches!(
                    bucket.entry(key.as_str()).await,
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put
                );
                if !back {
                    broker.send_lost_will(&record).await;
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_broker::Message;
    use roost_mqtt::QoS;

    fn space() -> SubjectSpace {
        SubjectSpace::new("roost").unwrap()
    }

    #[test]
    fn a_record_reads_back_with_its_will() {
        let now = Instant::now();
        let mut will = Message::new("status/dev.1/gone", &b"offline"[..], QoS::AtLeastOnce);
        will.retain = true;
        will.properties.message_expiry_interval = Some(60);
        will.properties.content_type = Some("text/plain".into());
        let record = ConnectionRecord {
            client_id: "dev.1/x".into(),
            conn_id: 7,
            session_identifier: "s".into(),
            principal: "abc".into(),
            source_ip: Some("10.0.0.9".parse().unwrap()),
            will: Some((will, Duration::from_secs(30))),
        };
        let value = encode(&record, "node1", "run1", now).unwrap();
        let (run, back) = decode(&space(), &key("dev.1/x"), &value, now).unwrap();
        assert_eq!(run, "run1");
        assert_eq!(
            (
                back.client_id.as_str(),
                back.conn_id,
                back.session_identifier.as_str()
            ),
            ("dev.1/x", 7, "s")
        );
        assert_eq!(
            (back.principal.as_str(), back.source_ip),
            ("abc", record.source_ip)
        );
        let (message, delay) = back.will.unwrap();
        assert_eq!(delay, Duration::from_secs(30));
        assert_eq!(
            (message.topic.as_str(), &message.payload[..]),
            ("status/dev.1/gone", &b"offline"[..])
        );
        assert_eq!((message.qos, message.retain), (QoS::AtLeastOnce, true));
        assert_eq!(message.properties.message_expiry_interval, Some(60));
        assert_eq!(
            message.expires_at, None,
            "its expiry counts from when it is sent"
        );
        assert_eq!(message.publisher.as_deref(), Some("dev.1/x"));
        assert_eq!(message.principal.as_deref(), Some("abc"));
    }

    #[test]
    fn a_record_without_a_will_reads_back_without_one() {
        let record = ConnectionRecord {
            client_id: "c".into(),
            conn_id: 1,
            session_identifier: "s".into(),
            principal: "p".into(),
            source_ip: None,
            will: None,
        };
        let now = Instant::now();
        let value = encode(&record, "n", "r", now).unwrap();
        let (_, back) = decode(&space(), &key("c"), &value, now).unwrap();
        assert!(back.will.is_none());
        assert!(decode(&space(), "node.x", &value, now).is_err());
        assert!(decode(&space(), &key("c"), b"{}", now).is_err());
        assert!(decode(&space(), &key("c"), b"not json\n", now).is_err());
    }

    #[test]
    fn a_run_is_gone_when_its_heartbeat_stood_still_or_never_came() {
        let start = Instant::now();
        let mut runs = Runs {
            own: "me".into(),
            started: start,
            seen: HashMap::new(),
            ended: HashSet::new(),
        };
        runs.heard("other".into(), start);
        let soon = start + Duration::from_secs(2);
        assert!(!runs.gone("other", soon));
        assert!(!runs.gone("never-heard", soon), "not before the grace");
        let later = start + GONE_AFTER + Duration::from_secs(1);
        assert!(runs.gone("other", later));
        assert!(runs.gone("never-heard", later));
        assert!(!runs.gone("me", later), "never itself");
        assert_eq!(runs.newly_gone(later), ["other"]);
        runs.ended.insert("other".into());
        assert!(runs.newly_gone(later).is_empty());
        // It came back: heard again, not gone, and may go again.
        runs.heard("other".into(), later);
        assert!(!runs.gone("other", later));
        assert!(!runs.ended.contains("other"));
    }
}
