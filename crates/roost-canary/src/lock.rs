//! One agent per state directory: two canaries sharing an outbox would
//! publish each other's incidents and fight over its removals.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

const FILE: &str = "agent.lock";

/// Holds the state directory while alive (the lock is released by the
/// kernel when the process ends, however it ends).
pub struct StateLock {
    _file: File,
}

fn open(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(FILE))
}

/// Takes the state directory, or says which process holds it.
pub fn acquire(dir: &Path) -> anyhow::Result<StateLock> {
    let file = open(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another roost-canary is running with the state directory {}",
            dir.display()
        ),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Whether a running agent holds `dir`.
pub fn held(dir: &Path) -> bool {
    matches!(
        open(dir).map(|f| f.try_lock()),
        Ok(Err(TryLockError::WouldBlock))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_agent_cannot_take_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!held(dir.path()));
        let lock = acquire(dir.path()).unwrap();
        assert!(held(dir.path()));
        let e = acquire(dir.path()).err().unwrap().to_string();
        assert!(e.contains("another roost-canary"), "{e}");
        drop(lock);
        assert!(!held(dir.path()));
    }
}
