//! The console's pages, rendered from what the control plane answered (its
//! JSON, as the CLI gets it). Pure: data in, HTML out, escaped by maud.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// What every page of a signed-in operator shows in its header.
pub struct Chrome<'a> {
    pub access_key_id: &'a str,
    pub csrf: &'a str,
}

/// A whole page: the header (navigation, sign-out) when signed in, the
/// content, and an error line if the last action failed.
pub fn page(title: &str, chrome: Option<&Chrome>, error: Option<&str>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Roost" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    span class="brand" { "Roost" }
                    @if let Some(chrome) = chrome {
                        nav aria-label="Main" {
                            a href="/console/things" { "Things" }
                        }
                        form method="post" action="/console/sign-out" class="sign-out" {
                            input type="hidden" name="csrf" value=(chrome.csrf);
                            span class="who" { (chrome.access_key_id) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    @if let Some(error) = error {
                        p class="error" role="alert" { (error) }
                    }
                    (content)
                }
            }
        }
    }
}

/// The sign-in form; `login_csrf` is also in the sign-in cookie.
pub fn sign_in(login_csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        error,
        html! {
            form method="post" action="/console/sign-in" class="stack" {
                input type="hidden" name="csrf" value=(login_csrf);
                label for="access_key_id" { "Access key ID" }
                input id="access_key_id" name="access_key_id" autocomplete="username" required;
                label for="secret_access_key" { "Secret access key" }
                input id="secret_access_key" name="secret_access_key" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A thing's control-plane path (`/things/{name}`, escaped).
pub fn thing_path(name: &str) -> String {
    format!(
        "/things/{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// A thing's page address.
pub fn thing_href(name: &str) -> String {
    format!("/console{}", thing_path(name))
}

/// ListThings' answer as a table, with a link to the next page and the
/// create form.
pub fn things(chrome: &Chrome, listing: &Value, error: Option<&str>) -> Markup {
    let things = listing
        .get("things")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next = listing.get("nextToken").and_then(Value::as_str);
    page(
        "Things",
        Some(chrome),
        error,
        html! {
            form method="post" action="/console/things" class="inline" {
                input type="hidden" name="csrf" value=(chrome.csrf);
                label for="thing_name" { "New thing name" }
                input id="thing_name" name="thing_name" required;
                button type="submit" { "Create thing" }
            }
            @if things.is_empty() {
                p { "No things yet." }
            } @else {
                table {
                    caption { "Things, by name" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Version" } } }
                    tbody {
                        @for thing in &things {
                            tr {
                                td { a href=(thing_href(text(thing, "thingName"))) { (text(thing, "thingName")) } }
                                td { (text(thing, "thingTypeName")) }
                                td { (thing.get("version").and_then(Value::as_i64).unwrap_or(0)) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p {
                    a rel="next" href={ "/console/things?next=" (percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)) } { "Next page" }
                }
            }
        },
    )
}

/// What a thing's page shows, each as the API answered it.
pub struct ThingView<'a> {
    /// DescribeThing.
    pub thing: &'a Value,
    /// ListThingPrincipals.
    pub principals: &'a Value,
    /// ListThingGroupsForThing.
    pub groups: &'a Value,
    /// GetThingConnectivityData.
    pub connectivity: &'a Value,
    /// ListPolicies, for the new certificate's policy.
    pub policies: &'a Value,
}

/// A Unix-ms time as UTC text (`2026-12-06 05:42:12 UTC`).
pub fn utc(millis: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// One thing: what the API says of it, its connection, and the one-click
/// certificate form.
pub fn thing(chrome: &Chrome, view: &ThingView) -> Markup {
    let ThingView {
        thing,
        principals,
        groups,
        connectivity,
        policies,
    } = view;
    let name = text(thing, "thingName");
    let attributes = thing
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let principals: Vec<&str> = principals
        .get("principals")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let groups: Vec<&str> = groups
        .get("thingGroups")
        .and_then(Value::as_array)
        .map(|g| g.iter().map(|g| text(g, "groupName")).collect())
        .unwrap_or_default();
    let connected = connectivity.get("connected").and_then(Value::as_bool) == Some(true);
    // Epoch seconds, as the API's timestamps are.
    let since = connectivity
        .get("timestamp")
        .and_then(Value::as_f64)
        .map(|secs| (secs * 1000.0) as i64);
    let policies: Vec<&str> = policies
        .get("policies")
        .and_then(Value::as_array)
        .map(|p| p.iter().map(|p| text(p, "policyName")).collect())
        .unwrap_or_default();
    page(
        name,
        Some(chrome),
        None,
        html! {
            p class="connectivity" {
                @if connected {
                    strong { "Connected" }
                    @if let Some(since) = since { " since " (utc(since)) }
                    " (client id " code { (name) } ")"
                } @else {
                    "Not connected"
                }
            }
            dl {
                dt { "ARN" } dd { code { (text(thing, "thingArn")) } }
                dt { "Type" } dd { (text(thing, "thingTypeName")) }
                dt { "Version" } dd { (thing.get("version").and_then(Value::as_i64).unwrap_or(0)) }
            }
            h2 { "Attributes" }
            @if attributes.is_empty() {
                p { "None." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                    tbody {
                        @for (key, value) in &attributes {
                            tr { td { (key) } td { (value.as_str().unwrap_or("")) } }
                        }
                    }
                }
            }
            h2 { "Certificates" }
            @if principals.is_empty() {
                p { "None attached." }
            } @else {
                ul class="principals" {
                    @for principal in &principals { li { code { (principal) } } }
                }
            }
            form method="post" action={ (thing_href(name)) "/certificates" } class="inline" {
                input type="hidden" name="csrf" value=(chrome.csrf);
                label for="policy_name" { "Policy for the new certificate" }
                select id="policy_name" name="policy_name" {
                    option value="" { "(none)" }
                    @for policy in &policies { option value=(policy) { (policy) } }
                }
                button type="submit" { "Create certificate" }
            }
            h2 { "Groups" }
            @if groups.is_empty() {
                p { "In no group." }
            } @else {
                ul { @for group in &groups { li { (group) } } }
            }
            p { a href="/console/things" { "All things" } }
        },
    )
}

/// A certificate made for a device (CreateKeysAndCertificate): its files,
/// shown once, as the AWS console shows them.
pub fn certificate_created(chrome: &Chrome, thing_name: &str, created: &Value) -> Markup {
    let certificate = text(created, "certificatePem");
    let key = created
        .get("keyPair")
        .map(|k| text(k, "PrivateKey"))
        .unwrap_or("");
    let id = text(created, "certificateId");
    page(
        "Certificate created",
        Some(chrome),
        None,
        html! {
            p role="status" {
                "Certificate " code { (id) } " is ACTIVE and attached to " a href=(thing_href(thing_name)) { (thing_name) } ". "
                strong { "Download its private key now: it is not kept and cannot be shown again." }
            }
            h2 { "Device certificate" }
            p { a download="device.pem.crt" href={ "data:application/x-pem-file;charset=utf-8," (percent_encoding::utf8_percent_encode(certificate, percent_encoding::NON_ALPHANUMERIC)) } { "Download device.pem.crt" } }
            pre id="certificate-pem" { (certificate) }
            h2 { "Private key" }
            p { a download="private.pem.key" href={ "data:application/x-pem-file;charset=utf-8," (percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)) } { "Download private.pem.key" } }
            pre id="private-key" { (key) }
            h2 { "Root CA" }
            p { a download="root-ca.pem" href="/root-ca.pem" { "Download root-ca.pem" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chrome() -> Chrome<'static> {
        Chrome {
            access_key_id: "AKIAEXAMPLE",
            csrf: "c5rf",
        }
    }

    #[test]
    fn what_the_api_answered_is_escaped() {
        let thing = json!({
            "thingName": "door-1",
            "thingArn": "arn:aws:iot:us-east-1:000000000000:thing/door-1",
            "attributes": {"note": "<script>alert(1)</script>"},
            "version": 3
        });
        let view = ThingView {
            thing: &thing,
            principals: &json!({"principals": []}),
            groups: &json!({}),
            connectivity: &json!({"connected": true, "timestamp": 1_796_535_732.5}),
            policies: &json!({"policies": [{"policyName": "<b>p</b>"}]}),
        };
        let html = super::thing(&chrome(), &view).into_string();
        assert!(html.contains("&lt;b&gt;p&lt;/b&gt;"), "{html}");
        assert!(html.contains(" since 2026-12-06 05:42:12 UTC"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("door-1"));
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_535_732_999), "2026-12-06 05:42:12 UTC");
        assert_eq!(utc(-1_000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn every_form_of_a_signed_in_page_carries_the_csrf_token() {
        let html = things(&chrome(), &json!({"things": []}), None).into_string();
        let forms = html.matches("<form").count();
        assert_eq!(forms, 2, "create and sign out");
        assert_eq!(html.matches(r#"name="csrf" value="c5rf""#).count(), forms);
    }

    #[test]
    fn a_listing_links_each_thing_and_the_next_page() {
        let listing = json!({
            "things": [{"thingName": "a:b", "version": 1}],
            "nextToken": "t/+="
        });
        let html = things(&chrome(), &listing, None).into_string();
        assert!(html.contains(r#"href="/console/things/a%3Ab""#), "{html}");
        assert!(
            html.contains(r#"href="/console/things?next=t%2F%2B%3D""#),
            "{html}"
        );
    }

    #[test]
    fn the_sign_in_form_labels_its_fields_and_hides_the_secret() {
        let html = sign_in("t0ken", Some("The access key or secret is wrong.")).into_string();
        assert!(html.contains(r#"<label for="access_key_id">"#));
        assert!(html.contains(r#"<label for="secret_access_key">"#));
        assert!(html.contains(r#"type="password""#));
        assert!(html.contains(r#"role="alert""#));
    }
}
