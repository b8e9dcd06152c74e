//! `redis`: a Redis 7.0 with a password (`requirepass`), as Debian 12
//! ships it. Reads RESP, multibulk and inline, and answers as that server
//! answers a client that has not authenticated: an unknown command or a
//! wrong number of arguments gets its error, `AUTH` and `HELLO … AUTH` get
//! `WRONGPASS`, everything else `NOAUTH`. Never runs a command, never
//! holds a key.

use super::wire::{Commands, Wire, MAX_ATTEMPTS};
use super::{Conn, Stream};
use crate::incident::{printable, Credential};

/// Arguments one command may have (Redis allows far more; no client
/// before `AUTH` needs them).
const MAX_ARGS: usize = 64;
/// The longest argument or inline line read.
const MAX_ARG: usize = 8 * 1024;

const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const HELLO_NOAUTH: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";

pub async fn serve(stream: impl Stream, conn: &mut Conn) -> std::io::Result<()> {
    let mut wire = Wire::new(stream, MAX_ARG + 2);
    let mut commands = Commands::default();
    let result = session(&mut wire, conn, &mut commands).await;
    commands.record_rest(conn).await;
    result
}

async fn session(
    wire: &mut Wire<impl Stream>,
    conn: &mut Conn,
    commands: &mut Commands,
) -> std::io::Result<()> {
    loop {
        let args = match read_command(wire).await? {
            Ok(args) => args,
            Err(error) => {
                wire.send(format!("-ERR Protocol error: {error}\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
        };
        let Some(first) = args.first() else { continue };
        let name = String::from_utf8_lossy(first).to_ascii_lowercase();
        // Redis closes on what looks like HTTP sent to it (its
        // "Possible SECURITY ATTACK" guard).
        if name == "host:" || name == "post" {
            return Ok(());
        }
        let (credential, reply) = match name.as_str() {
            "auth" => match &args[1..] {
                [password] => (
                    Some(Credential::password("default", text(password))),
                    WRONGPASS.to_vec(),
                ),
                [user, password] => (
                    Some(Credential::password(text(user), text(password))),
                    WRONGPASS.to_vec(),
                ),
                [] => (None, answer(&name, &args)),
                _ => (None, error("ERR syntax error")),
            },
            "hello" => match hello(&args) {
                Ok(Some(credential)) => (Some(credential), WRONGPASS.to_vec()),
                Ok(None) => (None, HELLO_NOAUTH.to_vec()),
                Err(reply) => (None, reply),
            },
            _ => (None, answer(&name, &args)),
        };
        commands.push(shown(&name, &args));
        if let Some(credential) = credential {
            let attempt = commands.attach(conn.attempt().credential(credential));
            conn.record(attempt).await;
            if conn.recorded() >= MAX_ATTEMPTS {
                wire.send(&reply).await?;
                return Ok(());
            }
        }
        wire.send(&reply).await?;
        if name == "quit" {
            return Ok(());
        }
    }
}

/// One command's arguments, or the protocol error Redis would answer with
/// before closing.
async fn read_command(
    wire: &mut Wire<impl Stream>,
) -> std::io::Result<Result<Vec<Vec<u8>>, String>> {
    let line = wire.line().await?;
    if line.first() != Some(&b'*') {
        return Ok(inline_args(&line));
    }
    let Some(count) = number(&line[1..]).filter(|&n| n <= MAX_ARGS as i64) else {
        return Ok(Err("invalid multibulk length".into()));
    };
    let mut args = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        let line = wire.line().await?;
        if line.first() != Some(&b'$') {
            let got = line.first().map_or(' ', |&b| b as char);
            return Ok(Err(format!("expected '$', got '{got}'")));
        }
        let Some(len) = number(&line[1..]).filter(|&n| (0..=MAX_ARG as i64).contains(&n)) else {
            return Ok(Err("invalid bulk length".into()));
        };
        let mut arg = wire.exact(len as usize + 2).await?;
        arg.truncate(len as usize);
        args.push(arg);
    }
    Ok(Ok(args))
}

fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An inline command split as Redis splits it: on spaces, with double or
/// single quotes around an argument.
fn inline_args(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut args = Vec::new();
    let mut bytes = line.iter().copied().peekable();
    loop {
        while bytes.next_if(|b| b.is_ascii_whitespace()).is_some() {}
        let Some(first) = bytes.peek().copied() else {
            return Ok(args);
        };
        let mut arg = Vec::new();
        if first == b'"' || first == b'\'' {
            bytes.next();
            loop {
                match bytes.next() {
                    None => return Err("unbalanced quotes in request".into()),
                    Some(b) if b == first => break,
                    Some(b'\\') if first == b'"' => arg.extend(bytes.next()),
                    Some(b) => arg.push(b),
                }
            }
            if bytes.peek().is_some_and(|b| !b.is_ascii_whitespace()) {
                return Err("unbalanced quotes in request".into());
            }
        } else {
            while let Some(b) = bytes.next_if(|b| !b.is_ascii_whitespace()) {
                arg.push(b);
            }
        }
        if args.len() == MAX_ARGS {
            return Err("invalid multibulk length".into());
        }
        args.push(arg);
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]` checked as Redis
/// checks it: the credential offered, if any, or the error reply.
fn hello(args: &[Vec<u8>]) -> Result<Option<Credential>, Vec<u8>> {
    if let Some(version) = args.get(1) {
        match number(version) {
            Some(2 | 3) => {}
            Some(_) => return Err(b"-NOPROTO unsupported protocol version\r\n".to_vec()),
            None => {
                return Err(error(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        }
    }
    let mut credential = None;
    let mut at = 2;
    while at < args.len() {
        let more = args.len() - 1 - at;
        let option = &args[at];
        if option.eq_ignore_ascii_case(b"auth") && more >= 2 {
            credential = Some(Credential::password(
                text(&args[at + 1]),
                text(&args[at + 2]),
            ));
            at += 3;
        } else if option.eq_ignore_ascii_case(b"setname") && more >= 1 {
            at += 2;
        } else {
            return Err(error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                text(option)
            )));
        }
    }
    Ok(credential)
}

/// The reply to a command that offers no credential.
fn answer(name: &str, args: &[Vec<u8>]) -> Vec<u8> {
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        let mut given = String::new();
        for arg in &args[1..] {
            if given.len() >= 128 {
                break;
            }
            let room = 128 - given.len();
            let arg = text(arg);
            given.push('\'');
            given.extend(arg.chars().take(room));
            given.push_str("' ");
        }
        return error(&format!(
            "ERR unknown command '{}', with args beginning with: {given}",
            clip(&text(&args[0]))
        ));
    };
    let (full, arity) = match (command.subcommands, args.get(1)) {
        (Some(subcommands), Some(sub)) => {
            let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
            match subcommands.iter().find(|(n, _)| *n == sub_name) {
                Some((n, arity)) => (format!("{name}|{n}"), *arity),
                None => {
                    return error(&format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        clip(&text(sub)),
                        name.to_ascii_uppercase()
                    ))
                }
            }
        }
        _ => (name.to_owned(), command.arity),
    };
    let argc = args.len() as i32;
    if (arity > 0 && argc != arity) || argc < -arity {
        return error(&format!(
            "ERR wrong number of arguments for '{full}' command"
        ));
    }
    if name == "quit" {
        return b"+OK\r\n".to_vec();
    }
    NOAUTH.to_vec()
}

/// An error reply; Redis turns line ends in it into spaces.
fn error(message: &str) -> Vec<u8> {
    let message: String = message
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    format!("-{message}\r\n").into_bytes()
}

fn clip(text: &str) -> String {
    text.chars().take(128).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command as the attempt's details show it (`AUTH` and `HELLO`
/// arguments left out: the credential holds them).
fn shown(name: &str, args: &[Vec<u8>]) -> String {
    if name == "auth" || name == "hello" {
        return name.to_ascii_uppercase();
    }
    let mut shown = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            shown.push(b' ');
        }
        shown.extend_from_slice(arg);
    }
    printable(&shown)
}

struct Command {
    name: &'static str,
    /// Redis's arity: exactly n arguments (the name counted) when
    /// positive, at least -n when negative.
    arity: i32,
    subcommands: Option<&'static [(&'static str, i32)]>,
}

const fn plain(name: &'static str, arity: i32) -> Command {
    Command {
        name,
        arity,
        subcommands: None,
    }
}

const fn container(name: &'static str, subcommands: &'static [(&'static str, i32)]) -> Command {
    Command {
        name,
        arity: -2,
        subcommands: Some(subcommands),
    }
}

/// The commands scanners and attack scripts send, with Redis 7.0's
/// arities: enough that their errors come back as Redis words them.
const COMMANDS: &[Command] = &[
    plain("auth", -2),
    plain("hello", -1),
    plain("quit", -1),
    plain("ping", -1),
    plain("echo", 2),
    plain("info", -1),
    plain("get", 2),
    plain("set", -3),
    plain("setnx", 3),
    plain("setex", 4),
    plain("getset", 3),
    plain("append", 3),
    plain("strlen", 2),
    plain("mget", -2),
    plain("mset", -3),
    plain("incr", 2),
    plain("decr", 2),
    plain("incrby", 3),
    plain("del", -2),
    plain("unlink", -2),
    plain("exists", -2),
    plain("type", 2),
    plain("ttl", 2),
    plain("expire", -3),
    plain("persist", 2),
    plain("rename", 3),
    plain("keys", 2),
    plain("scan", -2),
    plain("randomkey", 1),
    plain("dbsize", 1),
    plain("select", 2),
    plain("move", 3),
    plain("dump", 2),
    plain("restore", -4),
    plain("migrate", -6),
    plain("hget", 3),
    plain("hset", -4),
    plain("hgetall", 2),
    plain("lpush", -3),
    plain("rpush", -3),
    plain("lrange", 4),
    plain("lindex", 3),
    plain("sadd", -3),
    plain("smembers", 2),
    plain("zadd", -4),
    plain("zrange", -4),
    plain("sort", -2),
    plain("publish", 3),
    plain("subscribe", -2),
    plain("multi", 1),
    plain("exec", 1),
    plain("discard", 1),
    plain("watch", -2),
    plain("eval", -3),
    plain("evalsha", -3),
    plain("flushall", -1),
    plain("flushdb", -1),
    plain("save", 1),
    plain("bgsave", -1),
    plain("bgrewriteaof", 1),
    plain("lastsave", 1),
    plain("shutdown", -1),
    plain("slaveof", 3),
    plain("replicaof", 3),
    plain("sync", 1),
    plain("psync", -3),
    plain("monitor", 1),
    plain("role", 1),
    plain("time", 1),
    plain("debug", -2),
    plain("wait", 3),
    container(
        "config",
        &[
            ("get", -3),
            ("set", -4),
            ("resetstat", 2),
            ("rewrite", 2),
            ("help", 2),
        ],
    ),
    container(
        "client",
        &[
            ("list", -2),
            ("info", 2),
            ("id", 2),
            ("kill", -3),
            ("setname", 3),
            ("getname", 2),
            ("pause", -3),
            ("reply", 3),
            ("no-evict", 3),
            ("help", 2),
        ],
    ),
    container(
        "module",
        &[
            ("load", -3),
            ("loadex", -3),
            ("unload", 3),
            ("list", 2),
            ("help", 2),
        ],
    ),
    container(
        "acl",
        &[
            ("whoami", 2),
            ("list", 2),
            ("users", 2),
            ("getuser", 3),
            ("setuser", -3),
            ("deluser", -3),
            ("cat", -2),
            ("genpass", -2),
            ("log", -2),
            ("save", 2),
            ("load", 2),
            ("dryrun", -4),
            ("help", 2),
        ],
    ),
    container(
        "command",
        &[
            ("count", 2),
            ("docs", -2),
            ("info", -2),
            ("list", -2),
            ("getkeys", -3),
            ("help", 2),
        ],
    ),
    container(
        "script",
        &[
            ("load", 3),
            ("exists", -3),
            ("flush", -2),
            ("kill", 2),
            ("help", 2),
        ],
    ),
    container(
        "cluster",
        &[
            ("info", 2),
            ("nodes", 2),
            ("slots", 2),
            ("shards", 2),
            ("myid", 2),
            ("help", 2),
        ],
    ),
    container(
        "slowlog",
        &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    async fn ask(client: &mut BufReader<TcpStream>, request: &[u8]) -> String {
        client.get_mut().write_all(request).await.unwrap();
        let mut line = String::new();
        let _ = client.read_line(&mut line).await;
        line
    }

    #[tokio::test]
    async fn answers_like_a_password_protected_redis_and_records_auth() {
        let mut svc = testing::start(ServiceKind::Redis, |_| {}).await;
        let mut client = BufReader::new(TcpStream::connect(svc.addr).await.unwrap());
        assert_eq!(
            ask(&mut client, b"*1\r\n$4\r\nINFO\r\n").await,
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(
            ask(&mut client, b"CONFIG GET dir\r\n").await,
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(
            ask(&mut client, b"GET / HTTP/1.0\r\n").await,
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            ask(&mut client, b"CONFIG NOPE x\r\n").await,
            "-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n"
        );
        assert_eq!(
            ask(&mut client, b"FOO bar \"b z\"\r\n").await,
            "-ERR unknown command 'FOO', with args beginning with: 'bar' 'b z' \r\n"
        );
        assert_eq!(ask(&mut client, b"quit\r\n").await, "+OK\r\n");
        let first = svc.next().await;
        assert_eq!(first.details["event"], "commands");
        assert!(first.credential.is_none());
        assert_eq!(
            first.details["commands"],
            serde_json::json!([
                "INFO",
                "CONFIG GET dir",
                "GET / HTTP/1.0",
                "CONFIG NOPE x",
                "FOO bar b z",
                "quit"
            ])
        );

        let mut svc_conn = BufReader::new(TcpStream::connect(svc.addr).await.unwrap());
        assert_eq!(
            ask(&mut svc_conn, b"*2\r\n$4\r\nAUTH\r\n$8\r\nfoobared\r\n").await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(
            ask(&mut svc_conn, b"AUTH admin hunter2\r\n").await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(
            ask(&mut svc_conn, b"HELLO 3 AUTH bob pw\r\n").await,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(
            ask(&mut svc_conn, b"HELLO 3\r\n").await,
            String::from_utf8_lossy(HELLO_NOAUTH)
        );
        assert_eq!(
            ask(&mut svc_conn, b"HELLO 4\r\n").await,
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(ask(&mut svc_conn, b"QUIT\r\n").await, "+OK\r\n");

        for (user, password) in [("default", "foobared"), ("admin", "hunter2"), ("bob", "pw")] {
            let attempt = svc.next().await;
            assert_eq!(attempt.service, "redis");
            assert_eq!(
                attempt.credential,
                Some(Credential::password(user, password))
            );
        }
        let last = svc.next().await;
        assert_eq!(last.details["event"], "commands");
        assert_eq!(
            last.details["commands"],
            serde_json::json!(["AUTH", "AUTH", "HELLO", "HELLO", "HELLO", "QUIT"])
        );
    }

    #[tokio::test]
    async fn an_auth_brute_force_is_cut_after_the_cap() {
        let mut svc = testing::start(ServiceKind::Redis, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let mut burst = Vec::new();
        for n in 0..MAX_ATTEMPTS {
            burst.extend_from_slice(format!("AUTH pw{n}\r\n").as_bytes());
        }
        client.write_all(&burst).await.unwrap();
        let mut all = String::new();
        let _ = client.read_to_string(&mut all).await;
        assert_eq!(all.matches("-WRONGPASS").count(), MAX_ATTEMPTS as usize);
        for n in 0..MAX_ATTEMPTS {
            let attempt = svc.next().await;
            assert_eq!(
                attempt.credential.unwrap().password.unwrap(),
                format!("pw{n}")
            );
        }
    }

    #[tokio::test]
    async fn bad_input_closes_and_still_counts() {
        let svc = testing::start(ServiceKind::Redis, |_| {}).await;
        let cases: [&[u8]; 5] = [
            b"*99999\r\n",
            b"*1\r\n$99999999\r\n",
            b"*1\r\n:12\r\n",
            b"SET \"unbalanced\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        let mut svc = svc;
        for case in cases {
            let mut client = TcpStream::connect(svc.addr).await.unwrap();
            client.write_all(case).await.unwrap();
            let mut all = Vec::new();
            let _ = client.read_to_end(&mut all).await;
            assert!(
                all.is_empty() || all.starts_with(b"-ERR Protocol error: "),
                "{:?}",
                String::from_utf8_lossy(&all)
            );
            let attempt = svc.next().await;
            assert!(attempt.credential.is_none());
        }
        // Oversized inline input.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let _ = client.write_all(&vec![b'A'; 64 * 1024]).await;
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        assert_eq!(svc.next().await.details["event"], "connection");
    }

    #[test]
    fn inline_commands_split_as_redis_splits_them() {
        assert_eq!(
            inline_args(b"  set k 'a b'  \"c\\\"d\" ").unwrap(),
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"a b".to_vec(),
                b"c\"d".to_vec()
            ]
        );
        assert!(inline_args(b"set \"x").is_err());
        assert!(inline_args(b"").unwrap().is_empty());
    }
}
