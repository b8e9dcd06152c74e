//! The pure core of running Roost on several nodes.
//!
//! What this crate is for: the parts of the cluster that are decisions, not
//! I/O, so that they are tested on their own. Today that is
//! [`SubjectSpace`]: how an MQTT topic becomes a NATS subject and back, and
//! which NATS subscriptions stand for an MQTT topic filter, so that NATS's
//! own subject matching routes between nodes exactly as MQTT's matching
//! would (`docs/cluster.md`).
//!
//! What it must never do: I/O, or panic on any input string.
//!
//! ```
//! use roost_cluster::SubjectSpace;
//! use roost_topic::MatchMode;
//!
//! let space = SubjectSpace::new("roost").unwrap();
//! assert_eq!(space.topic_subject("sensor/room.1").unwrap(), "roost.m.sensor.room=2E1");
//! assert_eq!(space.topic_subject("$aws/things/t1").unwrap(), "roost.d.=24aws.things.t1");
//! assert_eq!(space.topic_of("roost.m.a.=.b").unwrap(), "a//b");
//!
//! let subs = space.filter_subscriptions("$share/workers/sensor/#", MatchMode::Mqtt).unwrap();
//! assert_eq!(subs.subjects, ["roost.m.sensor.>", "roost.m.sensor"]);
//! assert_eq!(subs.queue_group.as_deref(), Some("workers=2Fsensor=2F=23"));
//! ```

#![forbid(unsafe_code)]

mod subject;

pub use roost_topic::MatchMode;
pub use subject::{key, unkey, FilterSubjects, SubjectError, SubjectSpace, MAX_SUBJECT_BYTES};
