//! Topic rule destinations (CreateTopicRuleDestination and its family): the
//! confirmed URL prefixes the `http` rule action may send to.
//!
//! Why they exist: an http action's URL may be a substitution template, so a
//! message could otherwise choose where a rule sends data. As in AWS, a
//! destination starts IN_PROGRESS; Roost POSTs a confirmation message with a
//! secret token to its confirmation URL (through the installed
//! [`DestinationConfirmer`]); whoever controls that URL proves it by
//! confirming with the token, and the destination becomes ENABLED. The rules
//! engine sends an http action only to a URL an ENABLED destination covers
//! ([`covers`]).
//!
//! Only the token's SHA-256 is stored: the token is needed once, in the
//! confirmation message, and a copy of the database must not be enough to
//! confirm a destination. This module never logs a token.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::{paged, Registry, RegistryEvent};
use sha2::{Digest, Sha256};
use url::Url;

/// The longest URL AWS's model allows (`Url`: max 2000).
pub const MAX_URL_LEN: usize = 2000;
/// The longest confirmation token ConfirmTopicRuleDestination takes.
pub const MAX_TOKEN_LEN: usize = 2048;
/// ListTopicRuleDestinations' `maxResults` range (AWS: 1–1000).
pub const MAX_PAGE_SIZE: i64 = 1000;

/// A destination's status, as AWS names them. `DELETING` exists in AWS's
/// model but never lasts in Roost (a delete is one transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationStatus {
    /// Confirmed; the http action may send under its URL.
    Enabled,
    /// Created (or sent back to confirmation); waiting for the token.
    InProgress,
    /// Confirmed, but traffic is stopped until it is enabled again.
    Disabled,
    /// The confirmation message could not be delivered.
    Error,
}

impl DestinationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::InProgress => "IN_PROGRESS",
            Self::Disabled => "DISABLED",
            Self::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ENABLED" => Self::Enabled,
            "IN_PROGRESS" => Self::InProgress,
            "DISABLED" => Self::Disabled,
            "ERROR" => Self::Error,
            _ => return None,
        })
    }
}

/// A stored http topic rule destination.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicRuleDestination {
    pub arn: String,
    pub confirmation_url: String,
    pub status: DestinationStatus,
    pub status_reason: Option<String>,
    /// SHA-256 (hex) of the current confirmation token.
    pub token_sha256: String,
    pub created_at: Millis,
    pub last_updated_at: Millis,
}

/// Sends a destination's confirmation message; installed once at start by
/// whoever delivers http messages (roost-notify), so the registry itself
/// never sends anything.
pub trait DestinationConfirmer: Send + Sync {
    /// POSTs the confirmation message carrying `token` to the destination's
    /// confirmation URL, in the background. When it cannot be delivered the
    /// sender reports it with [`Registry::topic_rule_destination_unreachable`];
    /// Err (with the reason) when it could not even be queued.
    fn send_confirmation(
        &self,
        destination: &TopicRuleDestination,
        token: &str,
    ) -> std::result::Result<(), String>;
}

/// What UpdateTopicRuleDestination does for a requested status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMove {
    /// The status becomes this one.
    Set(DestinationStatus),
    /// Already there: nothing changes.
    Unchanged,
    /// Back to IN_PROGRESS with a new token, and a new confirmation message.
    Reconfirm,
}

/// The status moves UpdateTopicRuleDestination allows. As AWS documents
/// them: ENABLED and DISABLED swap; IN_PROGRESS sends a new confirmation
/// challenge. Only a confirmation (the token) enables an unconfirmed
/// destination, and ERROR (and AWS's DELETING) are Roost's to set.
pub fn status_move(from: DestinationStatus, to: &str) -> Result<StatusMove> {
    use DestinationStatus::*;
    let Some(to) = DestinationStatus::parse(to) else {
        return Err(RegistryError::invalid(format!(
            "status '{to}' is not valid: use ENABLED, DISABLED or IN_PROGRESS"
        )));
    };
    match (from, to) {
        (_, Error) => Err(RegistryError::invalid(
            "status ERROR cannot be set: Roost sets it when a confirmation message cannot be delivered",
        )),
        // A new challenge only ever takes traffic away, so it is allowed
        // from every status (AWS documents it for IN_PROGRESS and ERROR).
        (_, InProgress) => Ok(StatusMove::Reconfirm),
        (a, b) if a == b => Ok(StatusMove::Unchanged),
        (Enabled, Disabled) | (Disabled, Enabled) => Ok(StatusMove::Set(to)),
        (_, Enabled) => Err(RegistryError::invalid(format!(
            "the destination is {}: only ConfirmTopicRuleDestination, with the token sent to its confirmation URL, can enable it",
            from.as_str()
        ))),
        (_, Disabled) => Err(RegistryError::invalid(format!(
            "the destination is {}: only a confirmed (ENABLED) destination can be disabled",
            from.as_str()
        ))),
    }
}

fn invalid_url(url: &str, why: &str) -> RegistryError {
    RegistryError::invalid(format!("confirmationUrl '{url}' is not valid: {why}"))
}

/// Checks a destination's confirmation URL and returns it parsed: an
/// absolute `https://` URL (or `http://`, which Roost's http action also
/// accepts, for endpoints on a local network) with a host, at most
/// [`MAX_URL_LEN`] long, and nothing a prefix match could be fooled by:
/// no substitution template, user info or fragment.
pub fn check_confirmation_url(url: &str) -> Result<Url> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(invalid_url(
            url,
            &format!("it must be 1 to {MAX_URL_LEN} characters"),
        ));
    }
    if url.contains("${") {
        return Err(invalid_url(
            url,
            "a destination's URL cannot hold a substitution template",
        ));
    }
    let Some(rest) = ["https://", "http://"].iter().find_map(|s| {
        url.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &url[s.len()..])
    }) else {
        return Err(invalid_url(url, "it must start with https:// (or http://)"));
    };
    // A URL parser would read `https:///h` as host `h` and `\` as `/`:
    // the text must say what the parsed URL means.
    if rest.starts_with('/') || url.contains('\\') {
        return Err(invalid_url(url, "it has no host, or a backslash"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_url(url, "it holds spaces or control characters"));
    }
    let parsed = Url::parse(url).map_err(|e| invalid_url(url, &e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid_url(url, "it has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid_url(url, "it must not carry user info"));
    }
    if parsed.fragment().is_some() {
        return Err(invalid_url(url, "it must not have a #fragment"));
    }
    Ok(parsed)
}

/// Whether a destination whose confirmation URL is `confirmation` covers
/// `target`, the URL an http action is about to POST to. Both are compared
/// parsed (as the HTTP client sends them: `..` segments resolved, host in
/// lower case, default port dropped), so a rendered URL cannot leave the
/// prefix with `/../`, `%2e%2e`, `@host` or a longer host name. Roost is
/// stricter than AWS's plain string prefix on one point: the prefix must end
/// at a boundary (a `/`, `?` or the end of the path, or `&` after a query),
/// so `https://h/api` does not cover `https://h/api-admin`.
pub fn covers(confirmation: &Url, target: &Url) -> bool {
    if confirmation.scheme() != target.scheme()
        || confirmation.host() != target.host()
        || confirmation.port_or_known_default() != target.port_or_known_default()
        || !target.username().is_empty()
        || target.password().is_some()
    {
        return false;
    }
    let Some(rest) = target.as_str().strip_prefix(confirmation.as_str()) else {
        return false;
    };
    let boundaries: &[char] = if confirmation.query().is_some() {
        &['&', '#']
    } else if confirmation.path().ends_with('/') {
        return true;
    } else {
        &['/', '?', '#']
    };
    rest.is_empty() || rest.starts_with(boundaries)
}

/// The hex SHA-256 of a confirmation token, as stored.
fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An RFC 3339 UTC time with milliseconds, as AWS writes it in statusReason.
fn iso_time(at: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// AWS's statusReason while a destination waits for its confirmation.
fn awaiting(at: Millis) -> String {
    format!(
        "Awaiting confirmation. Confirmation message sent on {}; no response received from the endpoint.",
        iso_time(at)
    )
}

fn not_found(arn: &str) -> RegistryError {
    RegistryError::not_found(format!("Topic rule destination {arn} does not exist"))
}

impl Registry {
    /// Installs what sends confirmation messages (once; later calls are
    /// ignored). Without one, destinations stay IN_PROGRESS.
    pub fn set_destination_confirmer(&self, confirmer: std::sync::Arc<dyn DestinationConfirmer>) {
        let _ = self.destination_confirmer.set(confirmer);
    }

    /// Changes whenever the set of ENABLED destinations may have changed,
    /// before the call that changed it returns: the rules engine reloads
    /// its copy when this moves, so a disabled destination gets no further
    /// message, and it needs no query per message.
    pub fn topic_rule_destinations_generation(&self) -> u64 {
        self.destinations_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn destinations_changed(&self) {
        self.destinations_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.publish(RegistryEvent::DestinationsChanged);
    }

    /// Sends the confirmation message; one that cannot even be queued puts
    /// the destination in ERROR at once (returned as stored).
    async fn send_destination_confirmation(
        &self,
        destination: TopicRuleDestination,
        token: &str,
    ) -> Result<TopicRuleDestination> {
        let Some(confirmer) = self.destination_confirmer.get() else {
            tracing::warn!(
                arn = %destination.arn,
                "no confirmation sender installed: the destination stays IN_PROGRESS"
            );
            return Ok(destination);
        };
        match confirmer.send_confirmation(&destination, token) {
            Ok(()) => Ok(destination),
            Err(reason) => {
                self.topic_rule_destination_unreachable(&destination.arn, token, &reason)
                    .await?;
                self.get_topic_rule_destination(&destination.arn).await
            }
        }
    }

    /// A well-formed ruledestination ARN of this region and account.
    fn check_destination_arn(&self, arn: &str) -> Result<()> {
        let prefix = format!(
            "arn:aws:iot:{}:{}:ruledestination/http/",
            self.settings.region, self.settings.account
        );
        match arn.strip_prefix(&prefix) {
            Some(id) if uuid::Uuid::parse_str(id).is_ok() => Ok(()),
            _ => Err(RegistryError::invalid(format!(
                "'{arn}' is not a topic rule destination ARN ({prefix}<id>)"
            ))),
        }
    }

    /// CreateTopicRuleDestination: stores an IN_PROGRESS destination and
    /// sends its confirmation message. A destination with the same
    /// confirmation URL is ResourceAlreadyExists, as in AWS.
    pub async fn create_topic_rule_destination(
        &self,
        confirmation_url: &str,
    ) -> Result<TopicRuleDestination> {
        check_confirmation_url(confirmation_url)?;
        let token = crate::sns::new_token();
        let now = now_millis();
        let destination = TopicRuleDestination {
            arn: format!(
                "arn:aws:iot:{}:{}:ruledestination/http/{}",
                self.settings.region,
                self.settings.account,
                uuid::Uuid::new_v4()
            ),
            confirmation_url: confirmation_url.to_string(),
            status: DestinationStatus::InProgress,
            status_reason: Some(awaiting(now)),
            token_sha256: token_sha256(&token),
            created_at: now,
            last_updated_at: now,
        };
        self.store
            .insert_topic_rule_destination(&destination)
            .await?;
        self.destinations_changed();
        self.send_destination_confirmation(destination, &token)
            .await
    }

    /// Creates a destination for each of `urls` none has yet (CreateTopicRule
    /// and ReplaceTopicRule do this for http actions, as AWS does).
    pub(crate) async fn ensure_topic_rule_destinations(&self, urls: &[String]) -> Result<()> {
        for url in urls {
            match self.create_topic_rule_destination(url).await {
                Ok(d) => {
                    tracing::info!(arn = %d.arn, "topic rule destination created for an http action; it carries no message until it is confirmed")
                }
                Err(RegistryError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// ConfirmTopicRuleDestination (also the unsigned enableUrl): the token
    /// of the latest confirmation message enables the destination.
    pub async fn confirm_topic_rule_destination(&self, token: &str) -> Result<()> {
        let refused = || {
            RegistryError::invalid(
                "The confirmation token is not valid (a newer confirmation message may have replaced it)",
            )
        };
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(refused());
        }
        let hash = token_sha256(token);
        let destination = self
            .store
            .find_topic_rule_destination_by_token(&hash)
            .await?
            .ok_or_else(refused)?;
        let now = now_millis();
        self.store
            .update_topic_rule_destination(
                &destination.arn,
                Box::new(move |d: &mut TopicRuleDestination| {
                    // Replaced between the lookup and this write.
                    if d.token_sha256 != hash {
                        return Err(refused());
                    }
                    match d.status {
                        DestinationStatus::InProgress | DestinationStatus::Error => {
                            d.status = DestinationStatus::Enabled;
                            d.status_reason = None;
                            d.last_updated_at = now;
                            Ok(())
                        }
                        DestinationStatus::Enabled => Ok(()),
                        // The old token must not undo a deliberate DISABLE.
                        DestinationStatus::Disabled => Err(RegistryError::invalid(
                            "the destination is DISABLED: enable it with UpdateTopicRuleDestination",
                        )),
                    }
                }),
            )
            .await?;
        self.destinations_changed();
        Ok(())
    }

    pub async fn get_topic_rule_destination(&self, arn: &str) -> Result<TopicRuleDestination> {
        self.check_destination_arn(arn)?;
        self.store
            .get_topic_rule_destination(arn)
            .await?
            .ok_or_else(|| not_found(arn))
    }

    pub async fn list_topic_rule_destinations(
        &self,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<TopicRuleDestination>> {
        let limit = match max {
            None => 100,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n as usize,
            Some(n) => {
                return Err(RegistryError::invalid(format!(
                    "maxResults {n} is out of range: it must be between 1 and {MAX_PAGE_SIZE}"
                )))
            }
        };
        paged(
            token,
            limit,
            true,
            |d: &TopicRuleDestination| d.arn.clone(),
            |p| async move { self.store.list_topic_rule_destinations(&p).await },
        )
        .await
    }

    /// UpdateTopicRuleDestination: ENABLED <-> DISABLED, or back to
    /// IN_PROGRESS with a new confirmation message ([`status_move`]).
    pub async fn update_topic_rule_destination(&self, arn: &str, status: &str) -> Result<()> {
        self.check_destination_arn(arn)?;
        let requested = status.to_string();
        let token = crate::sns::new_token();
        let hash = token_sha256(&token);
        let new_hash = hash.clone();
        let now = now_millis();
        let updated = self
            .store
            .update_topic_rule_destination(
                arn,
                Box::new(move |d: &mut TopicRuleDestination| {
                    match status_move(d.status, &requested)? {
                        StatusMove::Unchanged => return Ok(()),
                        StatusMove::Set(s) => {
                            d.status = s;
                            d.status_reason = None;
                        }
                        StatusMove::Reconfirm => {
                            d.status = DestinationStatus::InProgress;
                            d.status_reason = Some(awaiting(now));
                            d.token_sha256 = new_hash;
                        }
                    }
                    d.last_updated_at = now;
                    Ok(())
                }),
            )
            .await?;
        self.destinations_changed();
        if updated.token_sha256 == hash {
            self.send_destination_confirmation(updated, &token).await?;
        }
        Ok(())
    }

    pub async fn delete_topic_rule_destination(&self, arn: &str) -> Result<()> {
        self.check_destination_arn(arn)?;
        if !self.store.delete_topic_rule_destination(arn).await? {
            return Err(not_found(arn));
        }
        self.destinations_changed();
        Ok(())
    }

    /// The confirmation URLs of every ENABLED destination (what the rules
    /// engine lets http actions send under).
    pub async fn enabled_topic_rule_destination_urls(&self) -> Result<Vec<String>> {
        let mut urls = Vec::new();
        let mut after = None;
        loop {
            let page = PageRequest {
                after: after.take(),
                limit: 1000,
                ascending: true,
            };
            let batch = self.store.list_topic_rule_destinations(&page).await?;
            let done = batch.len() < page.limit;
            after = batch.last().map(|d| d.arn.clone());
            urls.extend(
                batch
                    .into_iter()
                    .filter(|d| d.status == DestinationStatus::Enabled)
                    .map(|d| d.confirmation_url),
            );
            if done {
                return Ok(urls);
            }
        }
    }

    /// The confirmation message of `arn` sent with `token` could not be
    /// delivered: the destination goes to ERROR with the reason, unless a
    /// newer challenge (or a confirmation) has happened since.
    pub async fn topic_rule_destination_unreachable(
        &self,
        arn: &str,
        token: &str,
        reason: &str,
    ) -> Result<()> {
        let hash = token_sha256(token);
        let reason = format!("Confirmation message could not be delivered: {reason}");
        let now = now_millis();
        let result = self
            .store
            .update_topic_rule_destination(
                arn,
                Box::new(move |d: &mut TopicRuleDestination| {
                    if d.status == DestinationStatus::InProgress && d.token_sha256 == hash {
                        d.status = DestinationStatus::Error;
                        d.status_reason = Some(reason);
                        d.last_updated_at = now;
                    }
                    Ok(())
                }),
            )
            .await;
        match result {
            // Deleted meanwhile: nothing to record.
            Ok(_) | Err(RegistryError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DestinationStatus::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_prefix_covers_only_what_lies_under_it() {
        let c = url("https://example.com/hooks");
        for inside in [
            "https://example.com/hooks",
            "https://example.com/hooks/",
            "https://example.com/hooks/a/b?x=1",
            "https://example.com/hooks?x=1",
            "HTTPS://EXAMPLE.COM:443/hooks/a",
            "https://example.com/hooks/a/../b",
        ] {
            assert!(covers(&c, &url(inside)), "{inside}");
        }
        for outside in [
            "https://example.com/hooks-admin",
            "https://example.com/hook",
            "https://example.com/other",
            "https://example.com/hooks/../admin",
            "https://example.com/hooks/%2e%2e/admin",
            "https://example.com/hooks/..%2fadmin/../../admin",
            "https://example.com.evil.net/hooks",
            "https://example.com@evil.net/hooks",
            "https://user:pw@example.com/hooks",
            "https://example.com:8443/hooks",
            "http://example.com/hooks",
            "https://evil.net/hooks",
        ] {
            assert!(!covers(&c, &url(outside)), "{outside}");
        }
    }

    #[test]
    fn a_host_or_trailing_slash_prefix_covers_the_whole_path_below() {
        let host = url("https://example.com");
        assert!(covers(&host, &url("https://example.com/anything/at/all")));
        assert!(!covers(&host, &url("https://example.com.evil.net/")));
        let dir = url("https://example.com/in/");
        assert!(covers(&dir, &url("https://example.com/in/x")));
        assert!(!covers(&dir, &url("https://example.com/in")));
        let query = url("https://example.com/in?tenant=a");
        assert!(covers(&query, &url("https://example.com/in?tenant=a&x=1")));
        assert!(!covers(&query, &url("https://example.com/in?tenant=ab")));
    }

    #[test]
    fn confirmation_urls_are_checked() {
        assert!(check_confirmation_url("https://example.com/hooks").is_ok());
        assert!(check_confirmation_url("http://127.0.0.1:8080/in?x=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "example.com/hooks",
            "https://",
            "https:///path",
            "https://exa mple.com/",
            "https://example.com/${topic()}",
            "https://user@example.com/",
            "https://example.com/#frag",
            "https://example.com\\evil.net/",
        ] {
            let e = check_confirmation_url(bad).unwrap_err();
            assert_eq!(e.aws_code(), "InvalidRequestException", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_confirmation_url(&long).is_err());
    }

    #[test]
    fn status_moves_follow_aws() {
        assert_eq!(
            status_move(Enabled, "DISABLED").unwrap(),
            StatusMove::Set(Disabled)
        );
        assert_eq!(
            status_move(Disabled, "ENABLED").unwrap(),
            StatusMove::Set(Enabled)
        );
        assert_eq!(
            status_move(Enabled, "ENABLED").unwrap(),
            StatusMove::Unchanged
        );
        assert_eq!(
            status_move(Disabled, "DISABLED").unwrap(),
            StatusMove::Unchanged
        );
        for from in [InProgress, Error, Enabled, Disabled] {
            assert_eq!(
                status_move(from, "IN_PROGRESS").unwrap(),
                StatusMove::Reconfirm
            );
        }
        for (from, to) in [
            (InProgress, "ENABLED"),
            (Error, "ENABLED"),
            (InProgress, "DISABLED"),
            (Error, "DISABLED"),
            (Enabled, "ERROR"),
            (InProgress, "ERROR"),
            (Enabled, "DELETING"),
            (Enabled, "enabled"),
            (Enabled, ""),
        ] {
            let e = status_move(from, to).unwrap_err();
            assert_eq!(e.aws_code(), "InvalidRequestException", "{from:?} -> {to}");
        }
    }

    #[test]
    fn status_reasons_carry_the_time_as_aws_writes_it() {
        assert_eq!(
            awaiting(1_594_334_874_154),
            "Awaiting confirmation. Confirmation message sent on 2020-07-09T22:47:54.154Z; no response received from the endpoint."
        );
        assert_eq!(token_sha256("t").len(), 64);
    }
}
