//! `roost logs`: reads the event log's files under the data directory,
//! oldest first, and prints the events that pass the filters, as readable
//! lines or (`--json`) as the JSON lines they are stored as. `--follow`
//! keeps printing new events as they are written, across rotations.

pub mod files;

use anyhow::{Context, Result};
use roost_eventlog::{parse_since, Event, EventType, LogLevel};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The data directory of the Roost whose events to read.
    #[arg(long, env = "ROOST_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Keep printing events as they are written.
    #[arg(long, short)]
    pub follow: bool,
    /// Only events at this level or more severe (ERROR, WARN, INFO, DEBUG).
    #[arg(long, value_parser = parse_level)]
    pub level: Option<LogLevel>,
    /// Only events about this client id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Only events of this type (Connect, Disconnect, Publish-In,
    /// Publish-Out, Subscribe, RuleMatch, RuleExecution, JobExecution).
    #[arg(long, value_parser = parse_event_type)]
    pub event_type: Option<EventType>,
    /// Only events of the last 30s, 10m, 2h, 1d...
    #[arg(long, value_parser = parse_since_arg)]
    pub since: Option<Duration>,
    /// Print the events as stored: one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

fn parse_level(text: &str) -> Result<LogLevel, String> {
    match text.to_ascii_uppercase().parse() {
        Ok(LogLevel::Disabled) => {
            Err("DISABLED selects nothing: use ERROR, WARN, INFO or DEBUG".into())
        }
        Ok(level) => Ok(level),
        Err(e) => Err(format!("{e}")),
    }
}

fn parse_event_type(text: &str) -> Result<EventType, String> {
    EventType::parse(text).ok_or_else(|| {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!(
            "unknown event type {text:?}: expected one of {}",
            names.join(", ")
        )
    })
}

fn parse_since_arg(text: &str) -> Result<Duration, String> {
    parse_since(text).map_err(|e| e.to_string())
}

/// What an event must match to be printed.
struct Filter {
    level: Option<LogLevel>,
    client_id: Option<String>,
    event_type: Option<EventType>,
    /// Unix ms.
    not_before: Option<i64>,
}

impl Filter {
    fn matches(&self, event: &Event) -> bool {
        self.level.is_none_or(|l| l.logs(event.log_level))
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| event.client_id.as_deref() == Some(c.as_str()))
            && self.event_type.is_none_or(|t| event.event_type == t)
            && self
                .not_before
                .is_none_or(|t| event.unix_millis().is_some_and(|at| at >= t))
    }
}

/// One event as a readable line: time, level, type, status, then the
/// fields it has.
fn human(event: &Event) -> String {
    let mut line = format!(
        "{} {:<5} {} {:?}",
        event.timestamp,
        event.log_level.as_str(),
        event.event_type,
        event.status
    );
    let fields: [(&str, Option<String>); 7] = [
        ("clientId", event.client_id.as_deref().map(str::to_owned)),
        (
            "principalId",
            event.principal_id.as_deref().map(str::to_owned),
        ),
        (
            "source",
            event.source_ip.map(|ip| match event.source_port {
                Some(port) => std::net::SocketAddr::new(ip, port).to_string(),
                None => ip.to_string(),
            }),
        ),
        ("topic", event.topic_name.clone()),
        ("reason", event.reason.clone()),
        ("details", event.details.clone()),
        ("payload", event.payload.clone()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            // Quoted (and escaped) when it could be read as several fields,
            // or holds control characters: a device chooses its client id
            // and topics, and must not drive the reader's terminal.
            // Debug's escaping covers every character that is not
            // printable (controls, bidirectional overrides).
            let quoted = format!("{value:?}");
            if value.is_empty()
                || value.contains(char::is_whitespace)
                || quoted.len() != value.len() + 2
            {
                line.push_str(&format!(" {name}={quoted}"));
            } else {
                line.push_str(&format!(" {name}={value}"));
            }
        }
    }
    if event.payload_truncated {
        line.push_str(" (payload truncated)");
    }
    line
}

struct Printer<W: Write> {
    out: W,
    filter: Filter,
    json: bool,
    unreadable: u64,
}

impl<W: Write> Printer<W> {
    /// Prints `line` if it is an event that passes; false once the output
    /// is gone (a closed pipe).
    fn line(&mut self, line: &str) -> bool {
        let line = line.trim_end();
        if line.is_empty() {
            return true;
        }
        let Some(event) = Event::from_json_line(line) else {
            self.unreadable += 1;
            return true;
        };
        if !self.filter.matches(&event) {
            return true;
        }
        let text = if self.json {
            event.to_json_line()
        } else {
            human(&event)
        };
        writeln!(self.out, "{text}").is_ok()
    }
}

pub fn run(args: LogsArgs) -> Result<()> {
    if !args.data_dir.is_dir() {
        anyhow::bail!(
            "no data directory at {} (pass --data-dir, or set ROOST_DATA_DIR)",
            args.data_dir.display()
        );
    }
    let dir = files::dir_under(&args.data_dir);
    let not_before = args.since.map(|since| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.saturating_sub(since).as_millis() as i64
    });
    let mut printer = Printer {
        out: std::io::stdout().lock(),
        filter: Filter {
            level: args.level,
            client_id: args.client_id,
            event_type: args.event_type,
            not_before,
        },
        json: args.json,
        unreadable: 0,
    };
    let all = files::files_oldest_first(&dir);
    let current = dir.join(files::FILE);
    for path in all.iter().filter(|p| **p != current) {
        if !print_file(&mut printer, path)? {
            return Ok(());
        }
    }
    // The current file stays open for --follow: what is written after it
    // was read is read from where reading stopped.
    let mut reader = match File::open(&current) {
        Ok(file) => Some(BufReader::new(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", current.display())),
    };
    let mut partial = String::new();
    if let Some(reader) = reader.as_mut() {
        if !drain(&mut printer, reader, &mut partial)? {
            return Ok(());
        }
    }
    if printer.unreadable > 0 {
        eprintln!(
            "roost logs: {} lines were not events and were skipped",
            printer.unreadable
        );
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let _ = printer.out.flush();
        std::thread::sleep(FOLLOW_POLL);
        if let Some(r) = reader.as_mut() {
            if !drain(&mut printer, r, &mut partial)? {
                return Ok(());
            }
        }
        // Rotated (or created): what the old file still held was read
        // above. If it was rotated twice since, the file between it and the
        // new one is `events.log.1`: read it whole first. Then carry on
        // with the new one from its start.
        if replaced(reader.as_ref(), &current) {
            let newest_full = dir.join(format!("{}.1", files::FILE));
            if reader.is_some()
                && replaced(reader.as_ref(), &newest_full)
                && !print_file(&mut printer, &newest_full)?
            {
                return Ok(());
            }
            reader = File::open(&current).ok().map(BufReader::new);
            partial.clear();
        }
    }
}

fn replaced(reader: Option<&BufReader<File>>, path: &Path) -> bool {
    let Ok(now) = std::fs::metadata(path) else {
        return false;
    };
    match reader.and_then(|r| r.get_ref().metadata().ok()) {
        Some(open) => open.ino() != now.ino() || open.dev() != now.dev(),
        None => true,
    }
}

/// Prints what `reader` holds up to its end; a last line without its
/// newline (being written) waits in `partial`.
fn drain<W: Write>(
    printer: &mut Printer<W>,
    reader: &mut BufReader<File>,
    partial: &mut String,
) -> Result<bool> {
    loop {
        let read = reader.read_line(partial).context("reading the event log")?;
        if read == 0 || !partial.ends_with('\n') {
            return Ok(true);
        }
        let line = std::mem::take(partial);
        if !printer.line(&line) {
            return Ok(false);
        }
    }
}

fn print_file<W: Write>(printer: &mut Printer<W>, path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        // Rotated away between listing and opening: its events are in the
        // next file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if !printer.line(&line) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_eventlog::Status;

    #[test]
    fn filters_and_the_readable_line() {
        let event = Event::new(
            1_000,
            roost_eventlog::TraceId::nil(),
            "000000000000".into(),
            EventType::Connect,
            Status::Failure,
        )
        .client_id("dev 1")
        .source("10.0.0.1:1234".parse().unwrap())
        .reason("AUTHORIZATION_FAILURE");
        assert_eq!(
            human(&event),
            "1970-01-01 00:00:01.000 ERROR Connect Failure clientId=\"dev 1\" source=10.0.0.1:1234 reason=AUTHORIZATION_FAILURE"
        );
        let all = Filter {
            level: None,
            client_id: None,
            event_type: None,
            not_before: None,
        };
        assert!(all.matches(&event));
        let info_only = Filter {
            level: Some(LogLevel::Info),
            ..all
        };
        assert!(info_only.matches(&event));
        let other_client = Filter {
            client_id: Some("dev 2".into()),
            ..info_only
        };
        assert!(!other_client.matches(&event));
        let later = Filter {
            level: None,
            client_id: None,
            event_type: Some(EventType::Connect),
            not_before: Some(2_000),
        };
        assert!(!later.matches(&event));
        assert!(parse_level("disabled").is_err());
        // A device's own strings cannot reach the terminal raw.
        let sneaky = Event::new(
            0,
            roost_eventlog::TraceId::nil(),
            "a".into(),
            EventType::Subscribe,
            Status::Success,
        )
        .client_id("\u{1b}[31mred")
        .topic("a\u{7}b")
        .reason("\u{202e}desrever");
        let line = human(&sneaky);
        assert!(!line.contains(['\u{1b}', '\u{7}', '\u{202e}']), "{line}");
        assert!(line.contains("clientId=\"\\u{1b}[31mred\""), "{line}");
        assert_eq!(parse_level("info"), Ok(LogLevel::Info));
    }
}
