//! The registry against each real store (SQLite, PostgreSQL): AWS
//! semantics that need the store's atomicity, concurrency, and survival
//! across reopening.

#[macro_use]
mod support;

use roost_registry::model::CertificateStatus;
use roost_registry::{RegistryError, RegistryEvent, ThingUpdate};
use std::collections::BTreeMap;
use support::TestStore;

fn member(group: &str, thing: &str) -> roost_registry::GroupMembership {
    roost_registry::GroupMembership {
        thing_group_name: Some(group.into()),
        thing_name: Some(thing.into()),
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn concurrent_merges_lose_no_update(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    reg.create_thing_type("typed", Default::default())
        .await
        .unwrap();
    reg.create_thing("t", Some("typed"), BTreeMap::new())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.update_thing(
                "t",
                ThingUpdate {
                    attributes: Some((attrs(&[(&format!("k{i}"), "v")]), true)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let thing = reg.describe_thing("t").await.unwrap();
    assert_eq!(thing.attributes.len(), 40);
    assert_eq!(thing.version, 41);
}

async fn expected_version_lets_exactly_one_writer_win(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    reg.create_thing("t", None, attrs(&[("Owner", "a")]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.update_thing(
                "t",
                ThingUpdate {
                    attributes: Some((attrs(&[("Owner", &format!("w{i}"))]), true)),
                    expected_version: Some(1),
                    ..Default::default()
                },
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(RegistryError::VersionConflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(reg.describe_thing("t").await.unwrap().version, 2);
}

/// How many of the racing CreatePolicyVersion calls succeeded; the others
/// must have hit the version limit.
async fn versions_created<T>(
    tasks: Vec<tokio::task::JoinHandle<roost_registry::Result<T>>>,
) -> usize {
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(RegistryError::VersionsLimitExceeded(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    created
}

async fn concurrent_policy_versions_respect_the_limit(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    reg.create_policy("p", doc).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.create_policy_version("p", doc, false).await
        }));
    }
    assert_eq!(versions_created(tasks).await, 4);
    assert_eq!(reg.list_policy_versions("p").await.unwrap().len(), 5);
}

async fn everything_survives_reopening(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let (cert_id, root) = {
        let reg = store.open(dir.path()).await;
        reg.create_thing("t", None, attrs(&[("Owner", "x")]))
            .await
            .unwrap();
        let created = reg.create_keys_and_certificate(true).await.unwrap();
        let arn = reg.arns().cert(&created.certificate.id);
        reg.attach_thing_principal(
            "t",
            &arn,
            roost_registry::model::ThingPrincipalType::NonExclusive,
        )
        .await
        .unwrap();
        (created.certificate.id, reg.ca().root_pem().to_string())
    };
    let reg = store.open(dir.path()).await;
    assert_eq!(reg.ca().root_pem(), root);
    let cert = reg.describe_certificate(&cert_id).await.unwrap();
    assert_eq!(cert.status, CertificateStatus::Active);
    let page = reg.list_thing_principals("t", None, None).await.unwrap();
    assert_eq!(page.items, vec![reg.arns().cert(&cert_id)]);
}

async fn certificate_changes_are_announced(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    let mut events = reg.events();
    let cert = reg
        .create_keys_and_certificate(true)
        .await
        .unwrap()
        .certificate;
    reg.update_certificate(&cert.id, "INACTIVE").await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        RegistryEvent::CertificateStatusChanged {
            certificate_id: cert.id.clone(),
            status: Some(CertificateStatus::Inactive)
        }
    );
}

/// The next event `wanted` accepts, within a few seconds (others skipped).
async fn event_where(
    events: &mut tokio::sync::broadcast::Receiver<RegistryEvent>,
    wanted: impl Fn(&RegistryEvent) -> bool,
) -> RegistryEvent {
    tokio::time::timeout(std::time::Duration::from_secs(6), async {
        loop {
            let event = events.recv().await.expect("the registry's events");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event within 6 s")
}

/// Events received within `wait`.
async fn events_within(
    events: &mut tokio::sync::broadcast::Receiver<RegistryEvent>,
    wait: std::time::Duration,
) -> Vec<RegistryEvent> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        while let Ok(event) = events.recv().await {
            seen.push(event);
        }
    })
    .await;
    seen
}

/// Nodes sharing a PostgreSQL database hear every committed change from
/// the database itself (made through Roost or not), never a rolled-back
/// one, re-read everything when the version moved without a notification,
/// and say they are stale when they cannot confirm they are current.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_hear_every_committed_change_from_the_database() {
    use roost_registry::store::postgres::notify;
    use sqlx::{Connection, Executor};
    use std::time::Duration;
    let Some(store) =
        TestStore::postgres("postgres_nodes_hear_every_committed_change_from_the_database").await
    else {
        return;
    };
    let TestStore::Postgres { url } = &store else {
        unreachable!("a PostgreSQL store")
    };
    let dir = tempfile::tempdir().unwrap();
    let (here, there) = (store.open(dir.path()).await, store.open(dir.path()).await);
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let limit = Duration::from_secs(2);
    for node in [&here, &there] {
        notify::start(url, node.clone(), limit, stop.clone())
            .await
            .expect("listen for changes");
    }
    let (mut here_events, mut there_events) = (here.events(), there.events());
    let cert = here
        .create_keys_and_certificate(true)
        .await
        .unwrap()
        .certificate;
    let revoked = |status| {
        let id = cert.id.clone();
        move |event: &RegistryEvent| {
            *event
                == RegistryEvent::CertificateStatusChanged {
                    certificate_id: id.clone(),
                    status,
                }
        }
    };

    // A change through one node reaches the other; its maker applies it
    // once (its own notification is recognised).
    here.update_certificate(&cert.id, "REVOKED").await.unwrap();
    event_where(&mut there_events, revoked(Some(CertificateStatus::Revoked))).await;
    let mine = events_within(&mut here_events, Duration::from_millis(800)).await;
    assert_eq!(mine.len(), 1, "applied once where it was made: {mine:?}");

    // A change made outside Roost is announced by the database too.
    let mut admin = sqlx::PgConnection::connect(url.expose()).await.unwrap();
    sqlx::query("UPDATE certificates SET status = 'INACTIVE' WHERE id = $1")
        .bind(&cert.id)
        .execute(&mut admin)
        .await
        .unwrap();
    event_where(
        &mut there_events,
        revoked(Some(CertificateStatus::Inactive)),
    )
    .await;
    event_where(&mut here_events, revoked(Some(CertificateStatus::Inactive))).await;

    // A rolled-back change is not.
    let mut tx = admin.begin().await.unwrap();
    sqlx::query("UPDATE certificates SET status = 'ACTIVE' WHERE id = $1")
        .bind(&cert.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let after_rollback = events_within(&mut there_events, Duration::from_millis(800)).await;
    assert!(after_rollback.is_empty(), "{after_rollback:?}");

    // A policy attached on one node moves the other's authorization
    // generation for that certificate.
    let watch = there.authorization_watch(&cert.id, None);
    let before = there.authorization_generation(&watch);
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    here.create_policy("p", doc).await.unwrap();
    here.attach_policy("p", &here.arns().cert(&cert.id))
        .await
        .unwrap();
    event_where(&mut there_events, |e| {
        *e == RegistryEvent::AuthorizationChanged
    })
    .await;
    assert!(there.authorization_generation(&watch) > before);

    // The version moved with no notification (one was lost): the node
    // re-reads everything after the grace.
    admin
        .execute("UPDATE registry_version SET version = version + 1")
        .await
        .unwrap();
    event_where(&mut there_events, |e| *e == RegistryEvent::Resynced).await;
    assert!(there.freshness().check().is_ok());

    // The version cannot be read (the table locked): stale past the limit,
    // fresh again once it can.
    let mut lock = admin.begin().await.unwrap();
    lock.execute("LOCK TABLE registry_version IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let stale = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(why) = there.freshness().check() {
                return why;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("stale within 10 s");
    assert!(stale.contains("not confirmed up to date"), "{stale}");
    lock.rollback().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while there.freshness().check().is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("fresh again within 10 s");
}

async fn listing_pages_cover_everything_once(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    for i in 0..23 {
        reg.create_thing(&format!("thing-{i:02}"), None, BTreeMap::new())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = reg
            .list_things(Default::default(), token.as_deref(), Some(5))
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.into_iter().map(|t| t.name));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..23).map(|i| format!("thing-{i:02}")).collect::<Vec<_>>()
    );
    assert!(matches!(
        reg.list_things(Default::default(), Some("!!not-a-token!!"), None)
            .await,
        Err(RegistryError::InvalidRequest(_))
    ));
}

async fn group_hierarchy_rules(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    reg.create_thing_group("root", None, None, BTreeMap::new())
        .await
        .unwrap();
    reg.create_thing_group("a", Some("root"), None, BTreeMap::new())
        .await
        .unwrap();
    reg.create_thing_group("b", Some("root"), None, BTreeMap::new())
        .await
        .unwrap();
    reg.create_thing("t", None, BTreeMap::new()).await.unwrap();
    reg.add_thing_to_thing_group(&member("a", "t"))
        .await
        .unwrap();
    // One group per hierarchy.
    assert!(matches!(
        reg.add_thing_to_thing_group(&member("b", "t")).await,
        Err(RegistryError::InvalidRequest(_))
    ));
    // A group with children cannot be deleted.
    assert!(matches!(
        reg.delete_thing_group("root", None).await,
        Err(RegistryError::InvalidRequest(_))
    ));
    let d = reg.describe_thing_group("a").await.unwrap();
    assert_eq!(d.root_to_parent, vec!["root".to_string()]);
    let all = reg
        .list_things_in_thing_group("root", true, None, None)
        .await
        .unwrap();
    assert_eq!(all.items, vec!["t".to_string()]);
    assert_eq!(
        reg.thing_groups_with_ancestors("t").await.unwrap(),
        vec!["a".to_string(), "root".to_string()]
    );
    // Depth is limited to 7.
    let mut parent = "root".to_string();
    for i in 0..6 {
        let name = format!("d{i}");
        reg.create_thing_group(&name, Some(&parent), None, BTreeMap::new())
            .await
            .unwrap();
        parent = name;
    }
    assert!(matches!(
        reg.create_thing_group("too-deep", Some(&parent), None, BTreeMap::new())
            .await,
        Err(RegistryError::InvalidRequest(_))
    ));
}

/// Keeps the confirmation messages the registry asks to send.
#[derive(Default)]
struct Confirmations {
    sent: std::sync::Mutex<Vec<(String, String)>>,
    refuse: bool,
}

impl roost_registry::destinations::DestinationConfirmer for Confirmations {
    fn send_confirmation(
        &self,
        destination: &roost_registry::destinations::TopicRuleDestination,
        token: &str,
    ) -> Result<(), String> {
        if self.refuse {
            return Err("dropped: too many deliveries are waiting".into());
        }
        self.sent
            .lock()
            .unwrap()
            .push((destination.arn.clone(), token.to_string()));
        Ok(())
    }
}

impl Confirmations {
    fn last_token(&self) -> String {
        self.sent.lock().unwrap().last().unwrap().1.clone()
    }
}

async fn topic_rule_destinations_are_confirmed_by_their_latest_token_and_survive_reopening(
    store: TestStore,
) {
    use roost_registry::destinations::DestinationStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    let sent = std::sync::Arc::new(Confirmations::default());
    reg.set_destination_confirmer(sent.clone());
    let url = "https://collector.example.com/iot/";
    let generation = reg.topic_rule_destinations_generation();
    let d = reg.create_topic_rule_destination(url).await.unwrap();
    assert_eq!(d.status, InProgress);
    assert!(d
        .status_reason
        .as_deref()
        .unwrap()
        .starts_with("Awaiting confirmation"));
    assert_ne!(reg.topic_rule_destinations_generation(), generation);
    let first = sent.last_token();
    assert_eq!(first.len(), 64);
    // Only a hash is stored: the token appears nowhere in the database.
    assert!(!store.holds(dir.path(), &first).await);

    match reg.create_topic_rule_destination(url).await {
        Err(RegistryError::AlreadyExists { resource_arn, .. }) => {
            assert_eq!(resource_arn.as_deref(), Some(d.arn.as_str()))
        }
        other => panic!("{other:?}"),
    }
    let e = reg
        .update_topic_rule_destination(&d.arn, "ENABLED")
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidRequestException");
    assert!(reg
        .enabled_topic_rule_destination_urls()
        .await
        .unwrap()
        .is_empty());

    // A new challenge replaces the token; a late failure report of the old
    // one changes nothing.
    reg.update_topic_rule_destination(&d.arn, "IN_PROGRESS")
        .await
        .unwrap();
    let second = sent.last_token();
    assert_ne!(first, second);
    reg.topic_rule_destination_unreachable(&d.arn, &first, "timed out")
        .await
        .unwrap();
    assert_eq!(
        reg.get_topic_rule_destination(&d.arn).await.unwrap().status,
        InProgress
    );
    let e = reg
        .confirm_topic_rule_destination(&first)
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidRequestException");
    assert!(!e.to_string().contains(&first));

    reg.topic_rule_destination_unreachable(
        &d.arn,
        &second,
        "POST https://collector.example.com/iot/ answered 404 Not Found",
    )
    .await
    .unwrap();
    let failed = reg.get_topic_rule_destination(&d.arn).await.unwrap();
    assert_eq!(failed.status, Error);
    assert!(failed.status_reason.unwrap().contains("answered 404"));
    reg.confirm_topic_rule_destination(&second).await.unwrap();
    reg.confirm_topic_rule_destination(&second).await.unwrap();
    assert_eq!(
        reg.enabled_topic_rule_destination_urls().await.unwrap(),
        vec![url.to_string()]
    );

    reg.update_topic_rule_destination(&d.arn, "DISABLED")
        .await
        .unwrap();
    assert!(reg
        .enabled_topic_rule_destination_urls()
        .await
        .unwrap()
        .is_empty());
    // The old token cannot undo a deliberate DISABLE.
    assert!(reg.confirm_topic_rule_destination(&second).await.is_err());
    reg.update_topic_rule_destination(&d.arn, "ENABLED")
        .await
        .unwrap();
    drop(reg);

    let reg = store.open(dir.path()).await;
    let again = reg.get_topic_rule_destination(&d.arn).await.unwrap();
    assert_eq!(
        (again.status, again.confirmation_url.as_str()),
        (Enabled, url)
    );
    let page = reg
        .list_topic_rule_destinations(None, Some(1))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next_token.is_none());
    reg.delete_topic_rule_destination(&d.arn).await.unwrap();
    for e in [
        reg.get_topic_rule_destination(&d.arn).await.unwrap_err(),
        reg.delete_topic_rule_destination(&d.arn).await.unwrap_err(),
    ] {
        assert_eq!(e.aws_code(), "ResourceNotFoundException");
    }
    let e = reg
        .get_topic_rule_destination("arn:aws:iot:us-east-1:000000000000:rule/x")
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidRequestException");
}

async fn a_confirmation_that_cannot_be_queued_leaves_the_destination_in_error(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    reg.set_destination_confirmer(std::sync::Arc::new(Confirmations {
        refuse: true,
        ..Default::default()
    }));
    let d = reg
        .create_topic_rule_destination("https://example.com/in")
        .await
        .unwrap();
    assert_eq!(
        d.status,
        roost_registry::destinations::DestinationStatus::Error
    );
    assert!(d.status_reason.unwrap().contains("too many deliveries"));
}

/// A group's attached policies go with it, and only its own: `_` in its
/// name is a character, not a LIKE wildcard.
async fn deleting_a_group_detaches_only_its_own_policies(store: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let reg = store.open(dir.path()).await;
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    reg.create_policy("p", document).await.unwrap();
    for group in ["a_b", "aXb"] {
        reg.create_thing_group(group, None, None, BTreeMap::new())
            .await
            .unwrap();
        let arn = reg.arns().thing_group(group);
        reg.attach_policy("p", &arn).await.unwrap();
    }
    reg.delete_thing_group("a_b", None).await.unwrap();
    let targets = reg.list_targets_for_policy("p", None, None).await.unwrap();
    let groups: Vec<_> = targets
        .items
        .iter()
        .filter_map(|t| t.rsplit_once(":thinggroup/").map(|(_, g)| g.to_string()))
        .collect();
    assert_eq!(groups, ["aXb"]);
}

/// Several processes on one PostgreSQL database (here: several registries,
/// each with its own pools) keep the invariants one process keeps: the
/// version limit, and no lost attribute update.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_registries_sharing_a_database_keep_the_invariants() {
    let Some(store) =
        TestStore::postgres("postgres_registries_sharing_a_database_keep_the_invariants").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(store.open(dir.path()).await);
    }
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    nodes[0].create_policy("p", doc).await.unwrap();
    nodes[0]
        .create_thing_type("typed", Default::default())
        .await
        .unwrap();
    nodes[0]
        .create_thing("t", Some("typed"), BTreeMap::new())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let reg = nodes[i % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            let version = reg.create_policy_version("p", doc, false).await;
            let update = ThingUpdate {
                attributes: Some((attrs(&[(&format!("k{i}"), "v")]), true)),
                ..Default::default()
            };
            reg.update_thing("t", update).await.unwrap();
            version
        }));
    }
    assert_eq!(versions_created(tasks).await, 4);
    assert_eq!(nodes[1].list_policy_versions("p").await.unwrap().len(), 5);
    let thing = nodes[2].describe_thing("t").await.unwrap();
    assert_eq!((thing.attributes.len(), thing.version), (12, 13));
}

on_each_store!(
    concurrent_merges_lose_no_update,
    expected_version_lets_exactly_one_writer_win,
    concurrent_policy_versions_respect_the_limit,
    everything_survives_reopening,
    certificate_changes_are_announced,
    listing_pages_cover_everything_once,
    group_hierarchy_rules,
    topic_rule_destinations_are_confirmed_by_their_latest_token_and_survive_reopening,
    a_confirmation_that_cannot_be_queued_leaves_the_destination_in_error,
    deleting_a_group_detaches_only_its_own_policies,
);
