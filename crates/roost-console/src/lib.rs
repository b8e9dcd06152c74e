//! Roost's web console, served on the API port under `/console`
//! (docs/console.md): server-rendered pages over the control plane's own
//! operations ([`roost_api::call`]), so that it can do nothing the API
//! cannot. An operator signs in with an access key the API accepts; the
//! session is an HttpOnly, SameSite=Strict cookie, and every form carries
//! the session's CSRF token.

#![forbid(unsafe_code)]

pub mod pages;
pub mod session;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use pages::Chrome;
use roost_api::ApiState;
use serde::Deserialize;
use session::{Session, Sessions};
use std::sync::Arc;
use std::time::Instant;

/// The session cookie.
const COOKIE: &str = "roost_console";
/// The sign-in form's CSRF cookie (before there is a session).
const LOGIN_COOKIE: &str = "roost_console_login";

const STYLESHEET: &str = include_str!("../assets/console.css");

#[derive(Clone)]
struct Console {
    api: ApiState,
    sessions: Arc<Sessions>,
}

/// The console's routes, to merge into the API's router.
pub fn router(api: ApiState) -> Router {
    let console = Console {
        api,
        sessions: Arc::default(),
    };
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/things") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/things") }),
        )
        .route("/console/sign-in", get(sign_in_form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/things", get(things).post(create_thing))
        .route("/console/things/{name}", get(thing))
        .route(
            "/console/things/{name}/certificates",
            post(create_certificate),
        )
        .route("/console/assets/console.css", get(stylesheet))
        .with_state(console)
}

/// The value of cookie `name` in a request's headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Headers every console page carries: no caching of what it shows, no
/// framing, scripts and styles from the console only.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The signed-in session of a request, if any.
fn session_of(console: &Console, headers: &HeaderMap) -> Option<(String, Session)> {
    let token = cookie(headers, COOKIE)?;
    let session = console.sessions.get(token, Instant::now())?;
    Some((token.to_string(), session))
}

/// Why a request is refused before it does anything.
enum Refusal {
    /// Not signed in: pages send to the sign-in form.
    SignIn,
    /// A form without the session's CSRF token.
    Forgery,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::Forgery => (
                StatusCode::FORBIDDEN,
                "Refused: this form did not come from your console session (CSRF token missing or wrong). Reload the page and try again.\n",
            )
                .into_response(),
        }
    }
}

/// The session of a page request.
fn signed_in(console: &Console, headers: &HeaderMap) -> Result<Session, Refusal> {
    session_of(console, headers)
        .map(|(_, s)| s)
        .ok_or(Refusal::SignIn)
}

/// The session of a form, checked against its CSRF token.
fn form_session(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(String, Session), Refusal> {
    let (token, session) = session_of(console, headers).ok_or(Refusal::Forgery)?;
    if session::same_secret(&session.csrf, csrf) {
        Ok((token, session))
    } else {
        tracing::warn!(access_key_id = %session.access_key_id, "console form refused: CSRF token");
        Err(Refusal::Forgery)
    }
}

fn chrome(session: &Session) -> Chrome<'_> {
    Chrome {
        access_key_id: &session.access_key_id,
        csrf: &session.csrf,
    }
}

/// An API error as the operator reads it: its code and message.
fn said(error: &roost_api::ApiError) -> String {
    format!("{}: {}", error.code, error.message)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn sign_in_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    if session_of(&console, &headers).is_some() {
        return Redirect::to("/console/things").into_response();
    }
    login_page(None, StatusCode::OK)
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let csrf = session::token();
    let mut response = (status, pages::sign_in(&csrf, error)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, None));
    secured(response)
}

#[derive(Deserialize)]
struct SignIn {
    csrf: String,
    access_key_id: String,
    secret_access_key: String,
}

async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !session::same_secret(expected, &form.csrf) {
        return Refusal::Forgery.into_response();
    }
    let secret = roost_api::access_key_secret(&console.api, form.access_key_id.trim()).await;
    let valid = secret.is_some_and(|s| session::same_secret(&s, &form.secret_access_key));
    if !valid {
        tracing::info!(access_key_id = %form.access_key_id, "console sign-in refused");
        return login_page(
            Some("The access key ID or the secret access key is wrong."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let token = console
        .sessions
        .open(form.access_key_id.trim(), Instant::now());
    tracing::info!(access_key_id = %form.access_key_id, "console sign-in");
    let mut response = Redirect::to("/console/things").into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, set_cookie(COOKIE, &token, None));
    cookies.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0)));
    response
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Refusal> {
    let (token, _) = form_session(&console, &headers, &form.csrf)?;
    console.sessions.close(&token);
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(COOKIE, "", Some(0)));
    Ok(response)
}

#[derive(Deserialize)]
struct Listing {
    next: Option<String>,
}

async fn things(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(listing): Query<Listing>,
) -> Result<Response, Refusal> {
    let session = signed_in(&console, &headers)?;
    Ok(things_page(
        &console,
        &session,
        listing.next.as_deref(),
        None,
        StatusCode::OK,
    )
    .await)
}

async fn things_page(
    console: &Console,
    session: &Session,
    next: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let mut query = String::from("maxResults=50");
    if let Some(next) = next {
        query.push_str("&nextToken=");
        query.extend(percent_encoding::utf8_percent_encode(
            next,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    let (listing, error, status) =
        match roost_api::call(&console.api, "GET", "/things", &query, None).await {
            Ok(listing) => (listing, error, status),
            Err(e) => (
                serde_json::json!({}),
                Some(said(&e)),
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            ),
        };
    secured(
        (
            status,
            pages::things(&chrome(session), &listing, error.as_deref()),
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
struct NewThing {
    csrf: String,
    thing_name: String,
}

async fn create_thing(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<NewThing>,
) -> Result<Response, Refusal> {
    let (_, session) = form_session(&console, &headers, &form.csrf)?;
    let name = form.thing_name.trim();
    let path = pages::thing_path(name);
    Ok(
        match roost_api::call(
            &console.api,
            "POST",
            &path,
            "",
            Some(&serde_json::json!({})),
        )
        .await
        {
            Ok(_) => Redirect::to(&pages::thing_href(name)).into_response(),
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                things_page(&console, &session, None, Some(said(&e)), status).await
            }
        },
    )
}

async fn thing(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    let session = signed_in(&console, &headers)?;
    let base = pages::thing_path(&name);
    let api = &console.api;
    let described = roost_api::call(api, "GET", &base, "", None).await;
    let thing = match described {
        Ok(thing) => thing,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            let page = pages::page(
                &name,
                Some(&chrome(&session)),
                Some(&said(&e)),
                maud::html! {
                    p { a href="/console/things" { "All things" } }
                },
            );
            return Ok(secured((status, page).into_response()));
        }
    };
    // What else the page shows; one the API refuses shows as empty.
    let (principals, groups, connectivity, policies) = (
        roost_api::call(api, "GET", &format!("{base}/principals"), "", None).await,
        roost_api::call(api, "GET", &format!("{base}/thing-groups"), "", None).await,
        roost_api::call(api, "POST", &format!("{base}/connectivity-data"), "", None).await,
        roost_api::call(api, "GET", "/policies", "pageSize=250", None).await,
    );
    let view = pages::ThingView {
        thing: &thing,
        principals: &principals.unwrap_or_default(),
        groups: &groups.unwrap_or_default(),
        connectivity: &connectivity.unwrap_or_default(),
        policies: &policies.unwrap_or_default(),
    };
    Ok(secured(
        pages::thing(&chrome(&session), &view).into_response(),
    ))
}

#[derive(Deserialize)]
struct NewCertificate {
    csrf: String,
    #[serde(default)]
    policy_name: String,
}

/// One click, as in the AWS console: a new ACTIVE certificate and key
/// (CreateKeysAndCertificate), attached to the thing
/// (AttachThingPrincipal) and to a policy if one was picked (AttachPolicy),
/// its files shown once.
async fn create_certificate(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<NewCertificate>,
) -> Result<Response, Refusal> {
    let (_, session) = form_session(&console, &headers, &form.csrf)?;
    let api = &console.api;
    let failed = |what: &str, e: &roost_api::ApiError| {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        let page = pages::page(
            "Certificate",
            Some(&chrome(&session)),
            Some(&format!("{what}: {}", said(e))),
            maud::html! { p { a href=(pages::thing_href(&name)) { "Back to " (name) } } },
        );
        Ok(secured((status, page).into_response()))
    };
    // The thing first: no orphan certificate for a thing that is not there.
    if let Err(e) = roost_api::call(api, "GET", &pages::thing_path(&name), "", None).await {
        return failed("The thing", &e);
    }
    let created = match roost_api::call(
        api,
        "POST",
        "/keys-and-certificate",
        "setAsActive=true",
        None,
    )
    .await
    {
        Ok(created) => created,
        Err(e) => return failed("Creating the certificate", &e),
    };
    let arn = created
        .get("certificateArn")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let attach = roost_api::call_with_headers(
        api,
        "PUT",
        &format!("{}/principals", pages::thing_path(&name)),
        "",
        &[("x-amzn-principal", arn.as_str())],
        None,
    )
    .await;
    if let Err(e) = attach {
        return failed(
            "The certificate was created but not attached to the thing",
            &e,
        );
    }
    let policy = form.policy_name.trim();
    if !policy.is_empty() {
        let path = format!(
            "/target-policies/{}",
            percent_encoding::utf8_percent_encode(policy, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = serde_json::json!({ "target": arn });
        if let Err(e) = roost_api::call(api, "PUT", &path, "", Some(&body)).await {
            return failed(
                "The certificate was created and attached, but not the policy",
                &e,
            );
        }
    }
    tracing::info!(access_key_id = %session.access_key_id, thing = %name, "console: certificate created");
    Ok(secured(
        pages::certificate_created(&chrome(&session), &name, &created).into_response(),
    ))
}
