//! The event log's files: `logs/AWSIotLogsV2/events.log` under the data
//! directory, one JSON line per event, rotated by size (`events.log.1` is
//! the newest full file, `events.log.<max_files - 1>` the oldest) so that
//! the total stays within `max_file_bytes × max_files`.
//!
//! The writer is one thread fed by the event log's bounded queue: file
//! writes never run on the gateway's tasks. It never writes anything an
//! [`Event`] does not carry (the broker decides what that is: no keys, no
//! signatures, payloads only at DEBUG).

use roost_eventlog::{Event, EventLogCounters};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// The folder under the data directory. A subfolder of `logs/`, whose files
/// the `cloudwatchLogs` rule action writes (`logs/<group>.log`): no log
/// group's file can be taken for it.
pub const DIR: &str = "logs/AWSIotLogsV2";
/// The file being written.
pub const FILE: &str = "events.log";

/// Defaults: 10 MiB × 5 files.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: usize = 5;

/// While events keep coming, the writer takes them in rounds this far
/// apart: between rounds it sleeps instead of waiting on the queue, so a
/// busy gateway never has to wake it (a wake is a system call on the
/// publish path). It writes out what a round took before it sleeps, and
/// goes back to waiting once a round finds nothing: a reader sees an event
/// within about this long.
const ROUND: std::time::Duration = std::time::Duration::from_millis(5);

/// The file buffer: lines reach the file a buffer at a time within a round.
const BUFFER_BYTES: usize = 64 * 1024;

/// Size-based rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before it would grow past this.
    pub max_file_bytes: u64,
    /// Files kept, the one being written included (at least 1).
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

pub fn dir_under(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

fn rotated(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("{FILE}.{n}"))
}

/// The event log's files in `dir`, oldest first (what `roost logs` reads).
pub fn files_oldest_first(dir: &Path) -> Vec<PathBuf> {
    let mut numbered: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name
                .to_str()?
                .strip_prefix(FILE)?
                .strip_prefix('.')?
                .parse()
                .ok()?;
            Some((n, entry.path()))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(FILE);
    if current.exists() {
        files.push(current);
    }
    files
}

struct Writer {
    dir: PathBuf,
    rotation: Rotation,
    file: BufWriter<File>,
    size: u64,
    /// The line being written, kept between events.
    line: Vec<u8>,
}

impl Writer {
    fn open(dir: &Path, rotation: Rotation) -> std::io::Result<Writer> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join(FILE))?;
        let size = file.metadata()?.len();
        Ok(Writer {
            dir: dir.to_owned(),
            rotation,
            file: BufWriter::with_capacity(BUFFER_BYTES, file),
            size,
            line: Vec::with_capacity(512),
        })
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        self.line.clear();
        event.write_json_line(&mut self.line);
        self.line.push(b'\n');
        let len = self.line.len() as u64;
        if self.size > 0 && self.size + len > self.rotation.max_file_bytes {
            self.rotate()?;
        }
        self.file.write_all(&self.line)?;
        self.size += len;
        Ok(())
    }

    /// Writes `event`; a failure is counted and logged, and the writer
    /// carries on.
    fn write_counted(&mut self, event: Event, counters: &EventLogCounters) {
        if let Err(e) = self.write(&event) {
            counters.count_write_failure();
            tracing::warn!(error = %e, dir = %self.dir.display(), "writing the event log failed");
        }
    }

    /// `events.log` becomes `events.log.1`, each older file moves one up,
    /// and the oldest past `max_files` is removed.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let keep = self.rotation.max_files.max(1);
        if keep == 1 {
            // Only the current file is kept: start it again.
            self.file = BufWriter::with_capacity(
                BUFFER_BYTES,
                OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(self.dir.join(FILE))?,
            );
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.dir, keep - 1));
        for n in (1..keep - 1).rev() {
            let from = rotated(&self.dir, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.dir, n + 1))?;
            }
        }
        std::fs::rename(self.dir.join(FILE), rotated(&self.dir, 1))?;
        let reopened = Writer::open(&self.dir, self.rotation)?;
        // The line being written survives the rotation.
        self.file = reopened.file;
        self.size = reopened.size;
        Ok(())
    }
}

/// Starts the writer thread: it takes events from `queue` until every
/// handle is gone, writing them to `dir`. A failed write is counted in the
/// event log (`write_failures`) and the writer carries on.
pub fn start(
    dir: PathBuf,
    rotation: Rotation,
    queue: Receiver<Event>,
    counters: Arc<EventLogCounters>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut writer = Writer::open(&dir, rotation)?;
    std::thread::Builder::new()
        .name("event-log".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                writer.write_counted(first, &counters);
                loop {
                    let mut taken = 0usize;
                    while let Ok(event) = queue.try_recv() {
                        writer.write_counted(event, &counters);
                        taken += 1;
                    }
                    if let Err(e) = writer.file.flush() {
                        counters.count_write_failure();
                        tracing::warn!(error = %e, "flushing the event log failed");
                    }
                    if taken == 0 {
                        break;
                    }
                    std::thread::sleep(ROUND);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_eventlog::{EventType, Status};

    fn event(n: usize) -> Event {
        Event::new(
            n as i64,
            roost_eventlog::TraceId::from_u128(n as u128),
            "000000000000".into(),
            EventType::Connect,
            Status::Success,
        )
    }

    #[test]
    fn rotation_keeps_the_total_bounded_and_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = event(0).to_json_line().len() as u64 + 1;
        let rotation = Rotation {
            max_file_bytes: line_len * 3,
            max_files: 3,
        };
        let mut writer = Writer::open(dir.path(), rotation).unwrap();
        for n in 0..20 {
            writer.write(&event(n)).unwrap();
        }
        writer.file.flush().unwrap();
        let files = files_oldest_first(dir.path());
        assert_eq!(
            files,
            vec![
                rotated(dir.path(), 2),
                rotated(dir.path(), 1),
                dir.path().join(FILE)
            ]
        );
        let mut total = 0;
        let mut lines = Vec::new();
        for f in &files {
            total += std::fs::metadata(f).unwrap().len();
            for line in std::fs::read_to_string(f).unwrap().lines() {
                lines.push(Event::from_json_line(line).unwrap().trace_id);
            }
        }
        assert!(total <= rotation.max_file_bytes * rotation.max_files as u64);
        // The newest events, in order, with nothing missing in between.
        let expected: Vec<roost_eventlog::TraceId> = (12..20)
            .map(|n| roost_eventlog::TraceId::from_u128(n as u128))
            .collect();
        assert_eq!(lines, expected);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_writer_thread_drains_the_queue_and_stops_with_the_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let (log, rx) = roost_eventlog::EventLog::new("000000000000", Default::default(), 16);
        let thread = start(
            dir.path().to_owned(),
            Rotation::default(),
            rx,
            log.counters().clone(),
        )
        .unwrap();
        for n in 0..5 {
            log.emit(event(n));
        }
        drop(log);
        thread.join().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 5);
    }
}
