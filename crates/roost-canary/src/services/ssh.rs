//! `ssh`: an SSH server (russh) that introduces itself as Debian 12's
//! OpenSSH, completes the key exchange with host keys kept in the state
//! directory, and refuses every login: password, public key and
//! keyboard-interactive alike. Each credential offered is an attempt,
//! with the client's version string; at [`MAX_AUTH_TRIES`] the server
//! disconnects with OpenSSH's words for it ("Too many authentication
//! failures").
//!
//! It must never accept a login, open a channel or run anything: the
//! handler rejects every method and implements nothing past userauth.

use super::{Conn, Stream, CONNECTION_DEADLINE};
use crate::config::Service;
use crate::incident::{printable, Credential};
use anyhow::Context as _;
use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::{Auth, Config, Handler, PublicKeyOffer, Response};
use russh::{MethodKind, MethodSet, Preferred, SshId};
use std::borrow::Cow;
use std::future::Future as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// Debian 12's OpenSSH, as its `sshd` introduces itself.
pub const DEFAULT_VERSION: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";
/// Credentials offered on one connection before it is closed (OpenSSH's
/// `MaxAuthTries` default).
pub const MAX_AUTH_TRIES: u32 = 6;
/// Silence tolerated from the client, from its version string on.
const IDLE: Duration = Duration::from_secs(30);
/// How long a refusal takes, as a real server checking a password does.
const REJECTION_TIME: Duration = Duration::from_millis(500);
/// The longest client version string kept (RFC 4253 allows 255 bytes).
const MAX_VERSION_BYTES: usize = 255;
/// Debian's `ssh-keygen -A` makes RSA host keys of this size.
const RSA_BITS: usize = 3072;

/// The server's configuration: host keys (made once, then read from the
/// state directory), the version string and the methods it offers.
pub async fn prepare(service: &Service, state_dir: &Path) -> anyhow::Result<Arc<Config>> {
    let dir = state_dir.to_owned();
    let keys = tokio::task::spawn_blocking(move || host_keys(&dir)).await??;
    Ok(Arc::new(Config {
        server_id: SshId::Standard(Cow::Owned(version_line(service.banner.as_deref()))),
        methods: methods(),
        auth_rejection_time: REJECTION_TIME,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        // serve disconnects at MAX_AUTH_TRIES credentials; russh's own
        // count, a backstop, also takes the "none" probe clients start
        // with, which OpenSSH does not count.
        max_auth_attempts: MAX_AUTH_TRIES as usize + 1,
        inactivity_timeout: Some(IDLE),
        preferred: openssh_9_2(),
        ..Config::default()
    }))
}

/// OpenSSH 9.2p1's algorithm lists (Debian 12, with the strict key
/// exchange of its Terrapin fix), less what russh lacks: the
/// sntrup761x25519 exchange, the umac MACs and zlib compression. A scanner
/// listing algorithms (nmap's ssh2-enum-algos) sees a stock sshd, not
/// russh's own choice.
fn openssh_9_2() -> Preferred {
    use russh::{cipher, kex, mac};
    Preferred {
        kex: Cow::Borrowed(&[
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::ECDH_SHA2_NISTP256,
            kex::ECDH_SHA2_NISTP384,
            kex::ECDH_SHA2_NISTP521,
            kex::DH_GEX_SHA256,
            kex::DH_G16_SHA512,
            kex::DH_G18_SHA512,
            kex::DH_G14_SHA256,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        key: Cow::Owned(vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ed25519,
        ]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_128_CTR,
            cipher::AES_192_CTR,
            cipher::AES_256_CTR,
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
        ]),
        mac: Cow::Borrowed(&[
            mac::HMAC_SHA256_ETM,
            mac::HMAC_SHA512_ETM,
            mac::HMAC_SHA1_ETM,
            mac::HMAC_SHA256,
            mac::HMAC_SHA512,
            mac::HMAC_SHA1,
        ]),
        ..Preferred::default()
    }
}

/// The methods offered, after every refusal too: left alone, russh drops
/// a refused method from the list, and a client would stop trying it.
fn methods() -> MethodSet {
    MethodSet::from(
        &[
            MethodKind::PublicKey,
            MethodKind::Password,
            MethodKind::KeyboardInteractive,
        ][..],
    )
}

/// The identification line sent: the banner's first line, with the
/// `SSH-2.0-` prefix added where the banner names only the software.
fn version_line(banner: Option<&str>) -> String {
    let banner = banner
        .and_then(|b| b.lines().next())
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_VERSION);
    if banner.starts_with("SSH-") {
        banner.to_owned()
    } else {
        format!("SSH-2.0-{banner}")
    }
}

/// The host keys a stock Debian server has (ed25519, ECDSA P-256, RSA),
/// each made on first start and read back after.
fn host_keys(dir: &Path) -> anyhow::Result<Vec<PrivateKey>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let kinds = [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        (
            "ssh_host_ecdsa_key",
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        ("ssh_host_rsa_key", Algorithm::Rsa { hash: None }),
    ];
    kinds
        .into_iter()
        .map(|(name, algorithm)| host_key(&dir.join(name), algorithm))
        .collect()
}

fn host_key(path: &Path, algorithm: Algorithm) -> anyhow::Result<PrivateKey> {
    if !path.exists() {
        let mut rng = rand::rng();
        let key = match algorithm {
            Algorithm::Rsa { .. } => PrivateKey::new(
                KeypairData::from(RsaKeypair::random(&mut rng, RSA_BITS)?),
                "",
            )?,
            other => PrivateKey::random(&mut rng, other)?,
        };
        let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF)?;
        write_new_private(path, text.as_bytes())
            .with_context(|| format!("cannot write the host key {}", path.display()))?;
    }
    // Read back even when just made: another service on the same state
    // directory may have won the race, and the key on disk is the one.
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the host key {}", path.display()))?;
    PrivateKey::from_openssh(text)
        .with_context(|| format!("{} is not an OpenSSH private key", path.display()))
}

/// Writes `contents` (0600) to `path` unless it exists already, never
/// leaving a partial file under the final name.
fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = PathBuf::from(format!(
        "{}.{}.tmp",
        path.display(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// A credential the handler saw, handed to [`serve`] to record.
struct Offer {
    credential: Credential,
    method: &'static str,
    key_type: Option<String>,
}

pub async fn serve(
    stream: impl Stream + 'static,
    conn: &mut Conn,
    config: Arc<Config>,
) -> io::Result<()> {
    let version = Arc::new(OnceLock::new());
    let (offers_tx, mut offers) = mpsc::channel(MAX_AUTH_TRIES as usize);
    let attacker = Attacker {
        offers: offers_tx,
        tries: 0,
    };
    let stream = Tap::new(stream, version.clone());
    let ended = match russh::server::run_stream(config, stream, attacker).await {
        // The handler lives in the session's task: the offers end with it.
        Ok(session) => {
            let handle = session.handle();
            let mut offered = 0;
            while let Some(offer) = offers.recv().await {
                offered += 1;
                let mut attempt = conn
                    .attempt()
                    .credential(offer.credential)
                    .detail("method", offer.method);
                if let Some(key_type) = offer.key_type {
                    attempt = attempt.detail("keyType", key_type);
                }
                if let Some(version) = version.get() {
                    attempt = attempt.detail("clientVersion", version.as_str());
                }
                conn.record(attempt).await;
                if offered == MAX_AUTH_TRIES {
                    // Fails only when the session has ended already.
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ProtocolError,
                            "Too many authentication failures".into(),
                            String::new(),
                        )
                        .await;
                }
            }
            session.await
        }
        Err(e) => Err(e),
    };
    if conn.recorded() == 0 {
        if let Some(version) = version.get() {
            let attempt = conn
                .attempt()
                .detail("event", "connection")
                .detail("clientVersion", version.as_str());
            conn.record(attempt).await;
        }
    }
    ended.map_err(io::Error::other)
}

/// Why a session ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("more than {MAX_AUTH_TRIES} credentials offered")]
    TooManyTries,
    #[error("the connection is gone")]
    Gone,
}

/// The session's handler: records what the client offers, refuses it.
struct Attacker {
    offers: mpsc::Sender<Offer>,
    tries: u32,
}

impl Attacker {
    /// Hands the offer to [`serve`] and refuses it; past the cap (a
    /// client quicker than the disconnect) the session ends unrecorded.
    async fn refuse(&mut self, offer: Offer) -> Result<Auth, SessionEnd> {
        self.tries += 1;
        if self.tries > MAX_AUTH_TRIES {
            return Err(SessionEnd::TooManyTries);
        }
        self.offers
            .send(offer)
            .await
            .map_err(|_| SessionEnd::Gone)?;
        Ok(Auth::Reject {
            proceed_with_methods: Some(methods()),
            partial_success: false,
        })
    }
}

impl Handler for Attacker {
    type Error = SessionEnd;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, SessionEnd> {
        self.refuse(Offer {
            credential: Credential::password(user, password),
            method: "password",
            key_type: None,
        })
        .await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, SessionEnd> {
        let key = offer.public_key;
        self.refuse(Offer {
            credential: Credential::public_key(user, key.fingerprint(HashAlg::Sha256).to_string()),
            method: "publickey",
            key_type: Some(key.algorithm().as_str().to_owned()),
        })
        .await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, SessionEnd> {
        let Some(mut response) = response else {
            // What OpenSSH's PAM conversation asks.
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Borrowed(&[(Cow::Borrowed("Password: "), false)]),
            });
        };
        let answer = response.next().unwrap_or_default();
        self.refuse(Offer {
            credential: Credential::password(user, String::from_utf8_lossy(&answer)),
            method: "keyboard-interactive",
            key_type: None,
        })
        .await
    }
}

/// The connection as russh sees it, which notes the client's version
/// line on the way and ends at [`CONNECTION_DEADLINE`]: russh serves the
/// session in a task of its own, which the service's deadline cannot
/// cancel.
struct Tap<S> {
    inner: S,
    line: Vec<u8>,
    version: Arc<OnceLock<String>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Tap<S> {
    fn new(inner: S, version: Arc<OnceLock<String>>) -> Self {
        Self {
            inner,
            line: Vec::new(),
            version,
            deadline: Box::pin(tokio::time::sleep(CONNECTION_DEADLINE)),
        }
    }

    fn past_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    fn note(&mut self, bytes: &[u8]) {
        let end = bytes.iter().position(|&b| b == b'\n');
        let room = MAX_VERSION_BYTES.saturating_sub(self.line.len());
        let take = end.unwrap_or(bytes.len()).min(room);
        self.line.extend_from_slice(&bytes[..take]);
        if end.is_some() || self.line.len() >= MAX_VERSION_BYTES {
            let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            let _ = self.version.set(printable(line));
            self.line = Vec::new();
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the connection's deadline passed")
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.past_deadline(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.version.get().is_none() {
            if let Some(read) = buf.filled().get(before..) {
                this.note(read);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.past_deadline(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use russh::client::{self, KeyboardInteractiveAuthResponse};
    use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A client that trusts any host key and keeps the one it saw, and
    /// the server's reason when it disconnects.
    struct Client {
        seen: Arc<Seen>,
    }

    #[derive(Default)]
    struct Seen {
        host_key: OnceLock<String>,
        disconnect: OnceLock<String>,
    }

    impl client::Handler for Client {
        type Error = russh::Error;

        async fn check_server_key(
            &mut self,
            key: &PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
                let _ = self
                    .seen
                    .host_key
                    .set(key.fingerprint(HashAlg::Sha256).to_string());
            }
            Ok(true)
        }

        async fn disconnected(
            &mut self,
            reason: client::DisconnectReason<Self::Error>,
        ) -> Result<(), Self::Error> {
            match reason {
                client::DisconnectReason::ReceivedDisconnect(info) => {
                    let _ = self.seen.disconnect.set(info.message);
                    Ok(())
                }
                client::DisconnectReason::Error(e) => Err(e),
            }
        }
    }

    async fn connect(addr: SocketAddr) -> (client::Handle<Client>, Arc<Seen>) {
        let config = client::Config {
            client_id: SshId::Standard("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13".into()),
            ..client::Config::default()
        };
        let seen = Arc::new(Seen::default());
        let handler = Client { seen: seen.clone() };
        let handle = client::connect(Arc::new(config), addr, handler)
            .await
            .unwrap();
        (handle, seen)
    }

    #[tokio::test]
    async fn records_each_password_key_and_keyboard_answer_and_grants_none() {
        let mut svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        let (mut session, _) = connect(svc.addr).await;

        let auth = session
            .authenticate_password("root", "hunter2")
            .await
            .unwrap();
        // Refused, and every method still open, as OpenSSH lists them.
        let client::AuthResult::Failure {
            remaining_methods, ..
        } = auth
        else {
            panic!("refused, not {auth:?}");
        };
        assert_eq!(remaining_methods, methods());
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "ssh");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("root", "hunter2"))
        );
        assert_eq!(attempt.details["method"], "password");
        assert_eq!(
            attempt.details["clientVersion"],
            "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13"
        );

        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        let auth = session
            .authenticate_publickey("deploy", PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .unwrap();
        assert!(!auth.success());
        let attempt = svc.next().await;
        assert_eq!(
            attempt.credential,
            Some(Credential::public_key("deploy", fingerprint.clone()))
        );
        assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        assert_eq!(attempt.details["keyType"], "ssh-ed25519");

        let asked = session
            .authenticate_keyboard_interactive_start("admin", None)
            .await
            .unwrap();
        let KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } = asked else {
            panic!("a password prompt, not {asked:?}");
        };
        assert_eq!(prompts[0].prompt, "Password: ");
        assert!(!prompts[0].echo);
        let answered = session
            .authenticate_keyboard_interactive_respond(vec!["admin123".into()])
            .await
            .unwrap();
        assert!(matches!(
            answered,
            KeyboardInteractiveAuthResponse::Failure { .. }
        ));
        let attempt = svc.next().await;
        assert_eq!(
            attempt.credential,
            Some(Credential::password("admin", "admin123"))
        );
        assert_eq!(attempt.details["method"], "keyboard-interactive");
    }

    #[tokio::test]
    async fn closes_after_max_auth_tries_of_any_method() {
        let mut svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        let (mut session, seen) = connect(svc.addr).await;
        // Public keys, which russh's own cap does not count, and passwords.
        let mut offered = Vec::new();
        let mut refused = 0;
        let mut closed = false;
        for i in 0..MAX_AUTH_TRIES + 2 {
            let answer = if i % 2 == 0 {
                let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
                offered.push(Credential::public_key(
                    "root",
                    key.fingerprint(HashAlg::Sha256).to_string(),
                ));
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), None);
                session.authenticate_publickey("root", key).await
            } else {
                offered.push(Credential::password("root", format!("guess{i}")));
                session
                    .authenticate_password("root", format!("guess{i}"))
                    .await
            };
            match answer {
                Ok(auth) => {
                    assert!(!auth.success());
                    refused += 1;
                }
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        assert!(closed, "still open after {} tries", offered.len());
        assert!(
            refused <= MAX_AUTH_TRIES,
            "{refused} refusals before closing"
        );
        for credential in &offered[..MAX_AUTH_TRIES as usize] {
            assert_eq!(svc.next().await.credential.as_ref(), Some(credential));
        }
        // Nothing past the cap was recorded.
        assert!(svc.attempts.try_recv().is_err());
        // The client was told why, in OpenSSH's words.
        for _ in 0..100 {
            if seen.disconnect.get().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            seen.disconnect.get().map(String::as_str),
            Some("Too many authentication failures")
        );
    }

    #[tokio::test]
    async fn a_client_limited_to_what_openssh_9_2_offers_gets_through_key_exchange() {
        use russh::{cipher, kex, mac};
        let svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        // Algorithms stock OpenSSH has and russh's own defaults leave out.
        let config = client::Config {
            preferred: Preferred {
                kex: Cow::Borrowed(&[kex::ECDH_SHA2_NISTP256]),
                key: Cow::Owned(vec![Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                }]),
                cipher: Cow::Borrowed(&[cipher::AES_128_CTR]),
                mac: Cow::Borrowed(&[mac::HMAC_SHA1]),
                ..Preferred::default()
            },
            ..client::Config::default()
        };
        let handler = Client {
            seen: Arc::default(),
        };
        let mut session = client::connect(Arc::new(config), svc.addr, handler)
            .await
            .unwrap();
        let auth = session.authenticate_none("root").await.unwrap();
        assert!(!auth.success());
    }

    #[tokio::test]
    async fn introduces_itself_as_debian_openssh_or_its_banner() {
        let svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        assert_eq!(
            first_line(svc.addr).await,
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
        );
        let svc = testing::start(ServiceKind::Ssh, |s| {
            s.banner = Some("OpenSSH_8.4p1 Debian-5+deb11u3".into())
        })
        .await;
        assert_eq!(
            first_line(svc.addr).await,
            "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3\r\n"
        );
    }

    async fn first_line(addr: SocketAddr) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            client.read_exact(&mut byte).await.unwrap();
            line.push(byte[0]);
        }
        String::from_utf8(line).unwrap()
    }

    #[tokio::test]
    async fn host_keys_are_made_once_private_and_served_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = host_keys(dir.path()).unwrap();
        let algorithms: Vec<_> = first.iter().map(|k| k.algorithm().to_string()).collect();
        assert_eq!(
            algorithms,
            ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]
        );
        for name in [
            "ssh_host_ed25519_key",
            "ssh_host_ecdsa_key",
            "ssh_host_rsa_key",
        ] {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let again = host_keys(dir.path()).unwrap();
        let fingerprints = |keys: &[PrivateKey]| -> Vec<String> {
            keys.iter()
                .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                .collect()
        };
        assert_eq!(fingerprints(&first), fingerprints(&again));
        // What a client sees is one of them.
        let svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        let (_session, seen) = connect(svc.addr).await;
        let host_key = seen.host_key.get();
        assert!(host_key.is_some_and(|f| f.starts_with("SHA256:")));
    }

    #[tokio::test]
    async fn bad_input_closes_and_still_counts() {
        let mut svc = testing::start(ServiceKind::Ssh, |_| {}).await;
        // Not SSH: the line is kept, the connection closed.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_closed(&mut client).await;
        let attempt = svc.next().await;
        assert_eq!(attempt.details["event"], "connection");
        assert_eq!(attempt.details["clientVersion"], "GET / HTTP/1.1");

        // An endless version line: cut at 255 bytes, closed.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let _ = client.write_all(&[b'A'; 64 * 1024]).await;
        assert_closed(&mut client).await;
        let attempt = svc.next().await;
        assert_eq!(
            attempt.details["clientVersion"].as_str().unwrap().len(),
            MAX_VERSION_BYTES
        );

        // A version, then half a packet, then the end.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client
            .write_all(b"SSH-2.0-libssh2_1.10.0\r\n\x00\x00\x01")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        assert_closed(&mut client).await;
        let attempt = svc.next().await;
        assert_eq!(attempt.details["clientVersion"], "SSH-2.0-libssh2_1.10.0");
        assert!(attempt.credential.is_none());

        // A packet length far past any limit.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client
            .write_all(b"SSH-2.0-Go\r\n\xff\xff\xff\xf0garbage")
            .await
            .unwrap();
        assert_closed(&mut client).await;
        let attempt = svc.next().await;
        assert_eq!(attempt.details["clientVersion"], "SSH-2.0-Go");
    }

    /// Reads until the server closes (the server's own bytes are skipped).
    async fn assert_closed(client: &mut TcpStream) {
        let mut sink = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), client.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server kept the connection open"),
            }
        }
    }
}
