//! One batch of journal changes, coalesced into what is left to write.

use crate::journal::Op;
use crate::message::{Message, Outgoing, Subscription};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(super) type MessageKey = (u64, u64);

/// A persistent session's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SessionRow {
    pub(super) client_id: String,
    pub(super) expiry_secs: u64,
    pub(super) disconnected_at: Option<i64>,
}

/// What one batch of changes leaves in the file, with the changes that
/// cancel out removed: a message queued and acknowledged within the batch
/// is never written, a message queued and sent is written with DUP, a
/// session ended takes everything else it did with it, and the last change
/// to a subscription or retained topic wins. What is left commutes, so it
/// is written in any order.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) ended: BTreeSet<u64>,
    pub(super) sessions: BTreeMap<u64, SessionRow>,
    /// `None`: unsubscribed.
    pub(super) subscriptions: BTreeMap<(u64, String), Option<Subscription>>,
    pub(super) queued: BTreeMap<MessageKey, Outgoing>,
    pub(super) sent: BTreeSet<MessageKey>,
    pub(super) done: BTreeSet<MessageKey>,
    /// An empty payload clears the topic.
    pub(super) retained: BTreeMap<String, (Arc<Message>, i64)>,
}

impl Plan {
    pub(super) fn of(ops: &[Op]) -> Self {
        let mut plan = Plan::default();
        for op in ops {
            match op {
                Op::Session {
                    id,
                    client_id,
                    expiry_secs,
                    disconnected_at,
                } => {
                    let row = SessionRow {
                        client_id: client_id.clone(),
                        expiry_secs: *expiry_secs,
                        disconnected_at: *disconnected_at,
                    };
                    plan.sessions.insert(*id, row);
                }
                Op::SessionEnded { id } => {
                    plan.ended.insert(*id);
                }
                Op::Subscribed {
                    session,
                    filter,
                    subscription,
                } => {
                    plan.subscriptions
                        .insert((*session, filter.clone()), Some(*subscription));
                }
                Op::Unsubscribed { session, filter } => {
                    plan.subscriptions.insert((*session, filter.clone()), None);
                }
                Op::Queued { session, outgoing } => {
                    plan.queued
                        .insert((*session, outgoing.seq), outgoing.clone());
                }
                Op::Sent { session, seq } => match plan.queued.get_mut(&(*session, *seq)) {
                    Some(outgoing) => outgoing.dup = true,
                    None => {
                        plan.sent.insert((*session, *seq));
                    }
                },
                Op::Done { session, seq } => {
                    let key = (*session, *seq);
                    if plan.queued.remove(&key).is_none() {
                        plan.sent.remove(&key);
                        plan.done.insert(key);
                    }
                }
                Op::Retained { message, set_at } => {
                    plan.retained
                        .insert(message.topic.clone(), (message.clone(), *set_at));
                }
            }
        }
        if !plan.ended.is_empty() {
            let ended = &plan.ended;
            plan.sessions.retain(|id, _| !ended.contains(id));
            plan.subscriptions.retain(|(id, _), _| !ended.contains(id));
            plan.queued.retain(|(id, _), _| !ended.contains(id));
            plan.sent.retain(|(id, _)| !ended.contains(id));
            plan.done.retain(|(id, _)| !ended.contains(id));
        }
        plan
    }
}
