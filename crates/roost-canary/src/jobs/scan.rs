//! `localScan`: the host's listening TCP sockets, read from the kernel's
//! tables (`/proc/net/tcp` and `/proc/net/tcp6`), as the job's report. The
//! parser is pure; reading the files is the only I/O.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's state code for a listening socket.
const LISTEN: &str = "0A";

/// A listening socket: its address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
}

/// The listening sockets in one `/proc/net/tcp{,6}` table. Lines that do
/// not parse are skipped (the format is the kernel's; a line it adds in a
/// later version must not fail the scan).
pub fn parse_table(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(Listener {
                addr: parse_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host order (little
/// endian on the machines the canary runs on), each as 8 hex digits.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let words = words?;
    match (hex.len(), words.as_slice()) {
        (8, [w]) => Some(IpAddr::V4(Ipv4Addr::from(w.swap_bytes()))),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Every listening TCP socket of the host (its network namespace).
pub fn listening() -> std::io::Result<Vec<Listener>> {
    let mut all = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => all.extend(parse_table(&text)),
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(all.into_iter().collect())
}

/// The ports, sorted and without repeats, as one comma-separated value.
pub fn ports(listeners: &[Listener]) -> String {
    let ports: BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5 1 0 100 0 0 10 0
";

    #[test]
    fn listening_sockets_are_read_and_connections_left_out() {
        let v4 = parse_table(TCP);
        assert_eq!(
            v4,
            vec![
                Listener {
                    addr: "127.0.0.1".parse().unwrap(),
                    port: 8080
                },
                Listener {
                    addr: "0.0.0.0".parse().unwrap(),
                    port: 22
                },
            ]
        );
        let v6 = parse_table(TCP6);
        assert_eq!(
            v6[0],
            Listener {
                addr: "::".parse().unwrap(),
                port: 2222
            }
        );
        assert_eq!(
            v6[1],
            Listener {
                addr: "::1".parse().unwrap(),
                port: 80
            }
        );
        let mut all = v4;
        all.extend(v6);
        assert_eq!(ports(&all), "22,80,2222,8080");
    }

    #[test]
    fn this_hosts_tables_show_a_socket_we_listen_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listening().unwrap();
        assert!(
            found.iter().any(|l| l.port == port),
            "{port} not in {found:?}"
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic(text in "[0-9A-F: \n]{0,300}") {
            let _ = parse_table(&text);
        }
    }
}
