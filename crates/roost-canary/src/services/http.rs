//! `http` and `https`: a login page behind a web server that looks like a
//! stock Debian 12 one. Three skins (`admin`, `nas`, `router`), each a
//! complete page with a form, each behind the server such a device runs
//! (Apache, nginx, lighttpd) with that server's headers and error pages.
//! Every request is an attempt: method, path, query, headers, user agent,
//! and the credentials it carried (form fields, a JSON body, the query, or
//! HTTP Basic). A login always fails; nothing but the page is ever served.
//!
//! `https` is the same behind TLS, with a self-signed certificate made once
//! per skin and kept in the state directory, as a device makes its own.

use super::wire::{IDLE, MAX_ATTEMPTS};
use super::{Conn, Stream};
use crate::incident::{cut, printable, Credential};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// A request's head must arrive within this, and so must the next request
/// on a kept-alive connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of a request hyper buffers (head included); hyper's floor.
const MAX_BUFFER: usize = 16 * 1024;
/// The largest body read; a login form is far smaller.
const MAX_BODY: usize = 16 * 1024;
/// Headers kept per request for its details.
const MAX_HEADERS: usize = 32;
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One `http`/`https` service's look, fixed when it starts.
pub struct Site {
    skin: Skin,
    /// The `Server` header.
    server: String,
    /// Which server's error pages and headers go with it.
    flavour: Flavour,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skin {
    Admin,
    Nas,
    Router,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Apache,
    Nginx,
    Lighttpd,
}

impl Site {
    pub fn new(service: &super::Service) -> Self {
        let skin = match service.skin.as_deref() {
            Some("nas") => Skin::Nas,
            Some("router") => Skin::Router,
            _ => Skin::Admin,
        };
        // What each kind of device runs on Debian 12: a generic admin panel
        // on Apache, a NAS on nginx, a router on lighttpd.
        let default = match skin {
            Skin::Admin => "Apache/2.4.57 (Debian)",
            Skin::Nas => "nginx/1.22.1",
            Skin::Router => "lighttpd/1.4.69",
        };
        let server = service.banner.clone().unwrap_or_else(|| default.into());
        let flavour = if server.contains("Apache") {
            Flavour::Apache
        } else if server.contains("lighttpd") {
            Flavour::Lighttpd
        } else {
            Flavour::Nginx
        };
        Self {
            skin,
            server,
            flavour,
        }
    }

    /// The name a device of this skin gives itself (the certificate's
    /// subject).
    fn host_name(&self) -> &'static str {
        match self.skin {
            Skin::Admin => "debian",
            Skin::Nas => "nas.local",
            Skin::Router => "router.lan",
        }
    }
}

/// Serves HTTP/1.1 on `stream` until the client leaves, a request goes
/// unanswered past its timeout, or the connection has made
/// [`MAX_ATTEMPTS`] requests.
pub async fn serve(
    stream: impl Stream + 'static,
    conn: &mut Conn,
    site: &Site,
) -> std::io::Result<()> {
    let conn = Mutex::new(conn);
    let requests = AtomicU32::new(0);
    let service = hyper::service::service_fn(|request| {
        let last = requests.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_ATTEMPTS;
        answer(request, &conn, site, last)
    });
    // Not roost-listener's serve_http1: a web server writes `Server:` and
    // `Content-Type:`, not hyper's lower case, and scanners match on it.
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .title_case_headers(true)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await
        .map_err(std::io::Error::other)
}

/// Serves `https`: the TLS handshake, then [`serve`].
pub async fn serve_tls(
    stream: tokio::net::TcpStream,
    conn: &mut Conn,
    site: &Site,
    tls: &tokio_rustls::TlsAcceptor,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
    serve(stream, conn, site).await
}

async fn answer(
    request: Request<Incoming>,
    conn: &Mutex<&mut Conn>,
    site: &Site,
    last: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (head, body) = request.into_parts();
    // A declared length over the cap is refused without waiting for it.
    let body = if hyper::body::Body::size_hint(&body).lower() > MAX_BODY as u64 {
        None
    } else {
        match tokio::time::timeout(IDLE, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(collected)) => Some(collected.to_bytes()),
            _ => None,
        }
    };
    let mut details = Map::new();
    details.insert("method".into(), head.method.as_str().into());
    details.insert("path".into(), printable(head.uri.path().as_bytes()).into());
    if head.uri.authority().is_some() {
        // A proxy probe: the whole target shows what was asked for.
        details.insert(
            "uri".into(),
            printable(head.uri.to_string().as_bytes()).into(),
        );
    }
    if let Some(query) = head.uri.query() {
        details.insert("query".into(), printable(query.as_bytes()).into());
    }
    let mut headers = Map::new();
    for (name, value) in head.headers.iter().take(MAX_HEADERS) {
        headers.insert(name.as_str().into(), printable(value.as_bytes()).into());
    }
    details.insert("headers".into(), headers.into());
    if let Some(agent) = head.headers.get(USER_AGENT) {
        details.insert("userAgent".into(), printable(agent.as_bytes()).into());
    }
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(body) = body.as_ref().filter(|b| !b.is_empty()) {
        details.insert("body".into(), printable(body).into());
    }
    let credential = basic_auth(head.headers.get(AUTHORIZATION))
        .or_else(|| body.as_ref().and_then(|b| body_credential(content_type, b)))
        .or_else(|| head.uri.query().and_then(|q| form_credential(q.as_bytes())));
    let offered = credential.is_some();
    let local_port = {
        let mut conn = conn.lock().await;
        let mut attempt = conn.attempt();
        attempt.details = details;
        attempt.credential = credential;
        conn.record(attempt).await;
        conn.local_port
    };

    let path = head.uri.path();
    let host = head
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    // How Apache names itself in an error page: the Host the client sent,
    // else the name a stock Debian install falls back to (it logs
    // "using 127.0.1.1" at start); the port the client named, else the one
    // it connected to.
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') => (name, port.to_owned()),
        _ => (host, local_port.to_string()),
    };
    let name = if name.is_empty() { "127.0.1.1" } else { name };
    let host = format!("{name}:{port}");
    let host = host.as_str();
    let mut response = match (&head.method, body) {
        (_, None) => site.error_page(StatusCode::PAYLOAD_TOO_LARGE, &head.method, host),
        (&Method::POST, _) if offered || is_login_path(path) => {
            site.page(Some("Invalid username or password."))
        }
        (&Method::GET | &Method::HEAD, _) if is_login_path(path) => site.page(None),
        (&Method::GET | &Method::HEAD | &Method::POST, _) => {
            site.error_page(StatusCode::NOT_FOUND, &head.method, host)
        }
        _ => site.error_page(StatusCode::METHOD_NOT_ALLOWED, &head.method, host),
    };
    if last || response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

fn is_login_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/index.html"
            | "/index.php"
            | "/login"
            | "/login.html"
            | "/login.php"
            | "/login.cgi"
            | "/cgi-bin/login"
            | "/cgi-bin/luci"
            | "/admin"
            | "/admin/"
    )
}

/// `Authorization: Basic …`.
fn basic_auth(header: Option<&HeaderValue>) -> Option<Credential> {
    use base64::Engine;
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8_lossy(&decoded);
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    Some(Credential::password(user, password))
}

/// Credentials in a form or JSON body.
fn body_credential(content_type: &str, body: &[u8]) -> Option<Credential> {
    if content_type.contains("json") {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        let fields = fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())));
        return credential_of(fields);
    }
    form_credential(body)
}

fn form_credential(form: &[u8]) -> Option<Credential> {
    credential_of(
        form_urlencoded::parse(form)
            .take(MAX_HEADERS)
            .map(|(k, v)| (k.into_owned(), v.into_owned())),
    )
}

/// The user and password among a login form's fields.
fn credential_of(fields: impl Iterator<Item = (String, String)>) -> Option<Credential> {
    const USER: &[&str] = &[
        "username", "user", "login", "email", "uname", "usr", "account", "name", "userid",
    ];
    const PASSWORD: &[&str] = &["password", "pass", "pwd", "passwd", "passw", "secret"];
    let mut user = None;
    let mut password = None;
    for (name, value) in fields {
        let name = name.to_ascii_lowercase();
        if user.is_none() && USER.contains(&name.as_str()) {
            user = Some(value);
        } else if password.is_none() && PASSWORD.contains(&name.as_str()) {
            password = Some(value);
        }
    }
    match (user, password) {
        (user, Some(password)) => Some(Credential::password(user.unwrap_or_default(), password)),
        (Some(user), None) => Some(Credential::username(user)),
        (None, None) => None,
    }
}

impl Site {
    fn response(
        &self,
        status: StatusCode,
        content_type: &str,
        body: String,
    ) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let server = HeaderValue::from_str(&self.server).ok();
        let date =
            HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())).ok();
        // In the order the imitated server writes them: Apache puts its
        // Date first, nginx and lighttpd their Server.
        let (first, second) = match self.flavour {
            Flavour::Apache => ((hyper::header::DATE, date), (hyper::header::SERVER, server)),
            _ => ((hyper::header::SERVER, server), (hyper::header::DATE, date)),
        };
        for (name, value) in [first, second] {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        if let Ok(content_type) = HeaderValue::from_str(content_type) {
            headers.insert(CONTENT_TYPE, content_type);
        }
        response
    }

    /// The login page; `error` after a failed login.
    fn page(&self, error: Option<&str>) -> Response<Full<Bytes>> {
        let notice = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{e}</p>"))
            .unwrap_or_default();
        let page = match self.skin {
            Skin::Admin => ADMIN_PAGE,
            Skin::Nas => NAS_PAGE,
            Skin::Router => ROUTER_PAGE,
        };
        let content_type = match self.flavour {
            Flavour::Apache => "text/html; charset=UTF-8",
            _ => "text/html",
        };
        self.response(
            StatusCode::OK,
            content_type,
            page.replace("{notice}", &notice),
        )
    }

    /// An error page as the imitated server words it.
    fn error_page(&self, status: StatusCode, method: &Method, host: &str) -> Response<Full<Bytes>> {
        let code = status.as_u16();
        // Apache, nginx and lighttpd still use RFC 2616's name for 413.
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            _ => status.canonical_reason().unwrap_or_default(),
        };
        let (content_type, body) = match self.flavour {
            Flavour::Nginx => {
                let reason = if status == StatusCode::METHOD_NOT_ALLOWED {
                    "Not Allowed"
                } else {
                    reason
                };
                (
                    "text/html",
                    format!(
                        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>{}</center>\r\n</body>\r\n</html>\r\n",
                        self.server
                    ),
                )
            }
            Flavour::Apache => {
                let text = match status {
                    StatusCode::NOT_FOUND => {
                        "<p>The requested URL was not found on this server.</p>".to_owned()
                    }
                    StatusCode::METHOD_NOT_ALLOWED => format!(
                        "<p>The requested method {} is not allowed for this URL.</p>",
                        cut(method.as_str().to_owned())
                    ),
                    _ => "<p>The requested resource does not allow request data with POST requests, or the amount of data provided in\nthe request exceeds the capacity limit.\n</p>".to_owned(),
                };
                let (name, port) = host.rsplit_once(':').unwrap_or((host, ""));
                let name: String = name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                    .take(64)
                    .collect();
                let port: String = port.chars().filter(char::is_ascii_digit).take(5).collect();
                (
                    "text/html; charset=iso-8859-1",
                    format!(
                        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{code} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n{text}\n<hr>\n<address>{} Server at {name} Port {port}</address>\n</body></html>\n",
                        self.server
                    ),
                )
            }
            Flavour::Lighttpd => (
                "text/html",
                format!(
                    "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{code} {reason}</title>\n </head>\n <body>\n  <h1>{code} {reason}</h1>\n </body>\n</html>\n"
                ),
            ),
        };
        let mut response = self.response(status, content_type, body);
        let line_reason = match (self.flavour, status) {
            (Flavour::Nginx, StatusCode::METHOD_NOT_ALLOWED) => "Not Allowed",
            _ => reason,
        };
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                line_reason.as_bytes(),
            ));
        response
    }
}

/// The TLS side of `https`: the certificate and key from the state
/// directory, made on first start.
pub fn tls_acceptor(site: &Site, state_dir: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let skin = format!("{:?}", site.skin).to_ascii_lowercase();
    let cert_path = state_dir.join(format!("https-{skin}.crt"));
    let key_path = state_dir.join(format!("https-{skin}.key"));
    if !cert_path.exists() || !key_path.exists() {
        make_certificate(site.host_name(), &cert_path, &key_path)?;
    }
    let certs = CertificateDer::pem_file_iter(&cert_path)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A self-signed certificate for `host`, valid ten years like Debian's
/// snakeoil one; the key written 0600.
fn make_certificate(host: &str, cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let write = |path: &Path, text: &str, mode: u32| -> std::io::Result<()> {
        let partial = path.with_extension("partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    };
    write(key_path, &key.serialize_pem(), 0o600)?;
    write(cert_path, &cert.pem(), 0o644)?;
    Ok(())
}

const ADMIN_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Administration - Sign in</title>
<style>
body{margin:0;font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;background:#f4f6f9;color:#333}
.box{max-width:360px;margin:12vh auto;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:32px}
h1{font-size:20px;margin:0 0 24px}
label{display:block;font-size:13px;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px;border:1px solid #c8ced6;border-radius:4px}
button{margin-top:20px;width:100%;padding:10px;border:0;border-radius:4px;background:#2f6fb5;color:#fff;font-size:15px}
.error{color:#b00020;font-size:13px}
footer{text-align:center;font-size:11px;color:#888;margin-top:16px}
</style>
</head>
<body>
<div class="box">
<h1>Administration</h1>
{notice}
<form method="post" action="/login" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" type="text" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
<footer>Authorized personnel only. Access is logged.</footer>
</div>
</body>
</html>
"#;

const NAS_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NAS - Storage Manager</title>
<style>
html,body{height:100%;margin:0}
body{font-family:Verdana,Arial,sans-serif;background:linear-gradient(160deg,#1d3c5a,#3b6f93);display:flex;align-items:center;justify-content:center}
.panel{width:340px;background:rgba(255,255,255,.96);border-radius:10px;padding:28px 30px;box-shadow:0 8px 30px rgba(0,0,0,.35)}
.logo{font-size:22px;font-weight:bold;color:#1d3c5a;margin-bottom:4px}
.sub{font-size:12px;color:#667;margin-bottom:20px}
input{width:100%;box-sizing:border-box;margin:6px 0;padding:9px;border:1px solid #b9c3cc;border-radius:5px}
button{width:100%;margin-top:14px;padding:10px;border:0;border-radius:5px;background:#1f7ad1;color:#fff;font-weight:bold}
.error{color:#c62828;font-size:12px}
.keep{font-size:12px;color:#555}
</style>
</head>
<body>
<div class="panel">
<div class="logo">Storage Manager</div>
<div class="sub">Network Attached Storage</div>
{notice}
<form method="post" action="/login.cgi" name="login">
<input name="user" type="text" placeholder="Username" autocomplete="username" autofocus>
<input name="passwd" type="password" placeholder="Password" autocomplete="current-password">
<label class="keep"><input type="checkbox" name="remember" value="1" style="width:auto"> Stay signed in</label>
<button type="submit">Sign In</button>
</form>
</div>
</body>
</html>
"#;

const ROUTER_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wireless Router - Login</title>
<style>
body{font-family:Arial,Helvetica,sans-serif;background:#e9ecef;margin:0}
.top{background:#0b3d6b;color:#fff;padding:12px 20px;font-size:18px}
.login{width:320px;margin:60px auto;background:#fff;border:1px solid #ccc;padding:24px}
td{padding:6px 4px;font-size:13px}
input[type=text],input[type=password]{width:180px;padding:5px}
.btn{padding:6px 24px;background:#0b3d6b;color:#fff;border:0}
.error{color:#d00;font-size:12px}
</style>
</head>
<body>
<div class="top">Wireless Router</div>
<div class="login">
<p>Please enter your user name and password to log in.</p>
{notice}
<form method="post" action="/cgi-bin/login">
<table>
<tr><td>User Name:</td><td><input type="text" name="username" maxlength="32" value="admin"></td></tr>
<tr><td>Password:</td><td><input type="password" name="password" maxlength="64"></td></tr>
<tr><td></td><td><input class="btn" type="submit" value="Login"></td></tr>
</table>
</form>
</div>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .user_agent("Mozilla/5.0 (X11; Linux x86_64) canary-test")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_admin_page_and_a_failed_form_login_on_apache() {
        let mut svc = testing::start(ServiceKind::Http, |_| {}).await;
        let base = format!("http://{}", svc.addr);
        let page = client().get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["server"], "Apache/2.4.57 (Debian)");
        let html = page.text().await.unwrap();
        assert!(html.contains("<form method=\"post\" action=\"/login\""));
        assert!(html.contains("name=\"password\" type=\"password\""));
        assert!(!html.contains("{notice}"));
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "http");
        assert_eq!(attempt.details["method"], "GET");
        assert_eq!(attempt.details["path"], "/");
        assert!(attempt.details["userAgent"]
            .as_str()
            .unwrap()
            .ends_with("canary-test"));
        assert!(attempt.credential.is_none());

        let login = client()
            .post(format!("{base}/login?next=%2Fadmin"))
            .form(&[("username", "admin"), ("password", "p@ss word")])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        assert!(login
            .text()
            .await
            .unwrap()
            .contains("Invalid username or password."));
        let attempt = svc.next().await;
        assert_eq!(attempt.details["method"], "POST");
        assert_eq!(attempt.details["query"], "next=%2Fadmin");
        assert_eq!(
            attempt.details["headers"]["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            attempt.credential,
            Some(Credential::password("admin", "p@ss word"))
        );

        let missing = client().get(format!("{base}/.env")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let html = missing.text().await.unwrap();
        assert!(html.contains("<address>Apache/2.4.57 (Debian) Server at 127.0.0.1 Port"));
        assert_eq!(svc.next().await.details["path"], "/.env");
    }

    #[tokio::test]
    async fn basic_auth_and_json_logins_on_the_nas_skin_behind_nginx() {
        let mut svc = testing::start(ServiceKind::Http, |s| s.skin = Some("nas".into())).await;
        let base = format!("http://{}", svc.addr);
        let page = client().get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.headers()["server"], "nginx/1.22.1");
        assert!(page.text().await.unwrap().contains("name=\"passwd\""));
        svc.next().await;

        let basic = client()
            .get(format!("{base}/api/status"))
            .basic_auth("root", Some("calvin"))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 404);
        assert!(basic
            .text()
            .await
            .unwrap()
            .contains("<hr><center>nginx/1.22.1</center>"));
        assert_eq!(
            svc.next().await.credential,
            Some(Credential::password("root", "calvin"))
        );

        let json = client()
            .post(format!("{base}/webapi/auth"))
            .header("content-type", "application/json")
            .body(r#"{"account":"nasadmin","passwd":"123456","otp":1}"#)
            .send()
            .await
            .unwrap();
        assert!(json
            .text()
            .await
            .unwrap()
            .contains("Invalid username or password."));
        let attempt = svc.next().await;
        assert_eq!(
            attempt.credential,
            Some(Credential::password("nasadmin", "123456"))
        );
        assert_eq!(
            attempt.details["body"],
            r#"{\"account\":\"nasadmin\",\"passwd\":\"123456\",\"otp\":1}"#
        );
    }

    #[tokio::test]
    async fn https_serves_the_router_skin_with_its_own_certificate() {
        let mut svc = testing::start(ServiceKind::Https, |s| s.skin = Some("router".into())).await;
        let page = client()
            .post(format!("https://{}/cgi-bin/login", svc.addr))
            .form(&[("username", "admin"), ("password", "admin")])
            .send()
            .await
            .unwrap();
        assert_eq!(page.headers()["server"], "lighttpd/1.4.69");
        assert!(page.text().await.unwrap().contains("Wireless Router"));
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "https");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("admin", "admin"))
        );
    }

    #[test]
    fn the_certificate_is_made_once_and_its_key_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let site = Site::new(&crate::config::Service::new(ServiceKind::Https, None));
        tls_acceptor(&site, dir.path()).unwrap();
        let key = dir.path().join("https-admin.key");
        let cert = std::fs::read(dir.path().join("https-admin.crt")).unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        tls_acceptor(&site, dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("https-admin.crt")).unwrap(),
            cert,
            "kept across restarts"
        );
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_after_the_cap() {
        let mut svc = testing::start(ServiceKind::Http, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(MAX_ATTEMPTS as usize + 1);
        client.write_all(&request).await.unwrap();
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        let all = String::from_utf8_lossy(&all);
        assert_eq!(
            all.matches("HTTP/1.1 200 OK\r\n").count(),
            MAX_ATTEMPTS as usize
        );
        assert!(
            all.contains("\r\nServer: Apache/2.4.57 (Debian)\r\n"),
            "title case"
        );
        for _ in 0..MAX_ATTEMPTS {
            svc.next().await;
        }
    }

    #[tokio::test]
    async fn apache_names_itself_as_a_stock_debian_install_does() {
        let svc = testing::start(ServiceKind::Http, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(b"GET /x HTTP/1.0\r\n\r\n").await.unwrap();
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        let want = format!(
            "<address>Apache/2.4.57 (Debian) Server at 127.0.1.1 Port {}</address>",
            svc.addr.port()
        );
        assert!(String::from_utf8_lossy(&all).contains(&want));
    }

    #[tokio::test]
    async fn garbage_and_oversized_requests_close_and_still_count() {
        let mut svc = testing::start(ServiceKind::Http, |_| {}).await;
        let cases: [Vec<u8>; 3] = [
            b"\x16\x03\x01\x00\xa5garbage\r\n\r\n".to_vec(),
            [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 64 * 1024]].concat(),
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
        ];
        for case in cases {
            let mut client = TcpStream::connect(svc.addr).await.unwrap();
            let _ = client.write_all(&case).await;
            let mut all = Vec::new();
            let _ = client.read_to_end(&mut all).await;
            let attempt = svc.next().await;
            assert!(attempt.credential.is_none());
            assert!(!all.is_empty(), "an error answer, as a web server gives");
        }
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let _ = client
            .write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        assert!(
            String::from_utf8_lossy(&all).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "still serving"
        );
    }

    #[test]
    fn credentials_are_found_under_the_names_login_forms_use() {
        assert_eq!(
            form_credential(b"login=bob&pwd=x%26y&submit=1"),
            Some(Credential::password("bob", "x&y"))
        );
        assert_eq!(
            form_credential(b"email=a%40b.c"),
            Some(Credential::username("a@b.c"))
        );
        assert_eq!(form_credential(b"q=1&page=2"), None);
        assert_eq!(
            basic_auth(Some(&HeaderValue::from_static("Basic dXNlcg=="))),
            Some(Credential::password("user", ""))
        );
        assert_eq!(
            basic_auth(Some(&HeaderValue::from_static("Basic !!"))),
            None
        );
    }
}
