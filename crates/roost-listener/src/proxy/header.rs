//! The PROXY protocol header (HAProxy's, versions 2 and 1): what a load
//! balancer in TCP mode sends first on each connection to say whom it
//! accepted it from. Pure: the reader in `super` hands over exactly the
//! header's bytes, never the TLS that follows.
//!
//! Version 2 (binary): a 12-byte signature, a version-and-command byte, a
//! family-and-transport byte, the length of what follows (big-endian u16),
//! then the addresses and any TLVs. Version 1 (text): one line,
//! `PROXY TCP4|TCP6|UNKNOWN …\r\n`, at most 107 bytes.
//!
//! Never: panic on any input, or accept more than [`MAX_V2_PAYLOAD`] bytes
//! after the v2 preamble.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 preamble: the signature, version and command, family and
/// transport, the length of the rest.
pub const V2_PREAMBLE: usize = 16;
/// The most bytes accepted after the v2 preamble (addresses and TLVs). The
/// format allows 65,535; HAProxy in TCP mode sends 12 (IPv4) or 36 (IPv6)
/// plus the TLVs it was told to add.
pub const MAX_V2_PAYLOAD: usize = 4096;
/// The longest v1 line, CRLF included (the specification's bound).
pub const MAX_V1_LINE: usize = 107;
/// Every v1 line starts with this.
pub const V1_PREFIX: &[u8] = b"PROXY ";

/// What a header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy relays a client: `source` is the client, `destination`
    /// the address the client reached the proxy on.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL: the proxy's own connection (a health check); the TCP peer
    /// is the one to use.
    Local,
    /// A relayed connection whose addresses the proxy does not give (v1
    /// `UNKNOWN`, v2 `AF_UNSPEC` or `AF_UNIX`): the TCP peer is the one to
    /// use, as the specification says.
    Unknown,
}

impl ProxyHeader {
    /// The client's address, when the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            ProxyHeader::Proxied { source, .. } => Some(*source),
            ProxyHeader::Local | ProxyHeader::Unknown => None,
        }
    }
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("PROXY v2 header of version {0}, not 2")]
    Version(u8),
    #[error("PROXY v2 header with command {0:#x} (neither LOCAL nor PROXY)")]
    Command(u8),
    #[error("PROXY v2 header with address family {0:#x}")]
    Family(u8),
    #[error("PROXY v2 header with transport {0:#x}, not a stream")]
    Transport(u8),
    #[error("PROXY v2 header announcing {0} bytes of addresses and TLVs (at most {max})", max = MAX_V2_PAYLOAD)]
    TooLarge(usize),
    #[error("PROXY v2 header of {len} bytes, too short for its {family} addresses")]
    Short { family: &'static str, len: usize },
    #[error("PROXY v1 line longer than {max} bytes", max = MAX_V1_LINE)]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1(&'static str),
}

/// How a connection's first 12 bytes start a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The v2 signature: 4 more bytes say how long the rest is.
    V2,
    /// `PROXY `: a v1 line, up to CRLF.
    V1,
}

/// The first 12 bytes of a connection (fewer than the shortest v1 line,
/// `PROXY UNKNOWN\r\n`, so reading them never takes a byte of what follows).
pub fn start(first: &[u8; 12]) -> Result<Start, HeaderError> {
    if *first == V2_SIGNATURE {
        Ok(Start::V2)
    } else if first.starts_with(V1_PREFIX) {
        Ok(Start::V1)
    } else {
        Err(HeaderError::Missing)
    }
}

/// The length of what follows a v2 preamble, once its version and command
/// are checked.
pub fn v2_payload_len(preamble: &[u8; V2_PREAMBLE]) -> Result<usize, HeaderError> {
    if preamble[..12] != V2_SIGNATURE {
        return Err(HeaderError::Missing);
    }
    let version = preamble[12] >> 4;
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    let command = preamble[12] & 0x0f;
    if command > 1 {
        return Err(HeaderError::Command(command));
    }
    let len = usize::from(u16::from_be_bytes([preamble[14], preamble[15]]));
    if len > MAX_V2_PAYLOAD {
        return Err(HeaderError::TooLarge(len));
    }
    Ok(len)
}

/// A v2 header: its preamble and the `payload` it announced (addresses,
/// then TLVs, which are ignored).
pub fn parse_v2(preamble: &[u8; V2_PREAMBLE], payload: &[u8]) -> Result<ProxyHeader, HeaderError> {
    let len = v2_payload_len(preamble)?;
    if payload.len() != len {
        return Err(HeaderError::Short {
            family: "announced",
            len: payload.len(),
        });
    }
    let local = preamble[12] & 0x0f == 0;
    let family = preamble[13] >> 4;
    let transport = preamble[13] & 0x0f;
    if family > 3 {
        return Err(HeaderError::Family(family));
    }
    if transport > 2 {
        return Err(HeaderError::Transport(transport));
    }
    if local {
        // The addresses, whatever they are, are not a client's.
        return Ok(ProxyHeader::Local);
    }
    let addresses = |family, need| match payload.get(..need) {
        Some(a) => Ok(a),
        None => Err(HeaderError::Short { family, len }),
    };
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match (family, transport) {
        // AF_UNSPEC, AF_UNIX, or an unspecified transport: no client
        // address to use.
        (0 | 3, _) | (_, 0) => Ok(ProxyHeader::Unknown),
        (_, 2) => Err(HeaderError::Transport(transport)),
        (1, _) => {
            let a = addresses("IPv4", 12)?;
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(&a[0..4]), port(&a[8..10])),
                destination: SocketAddr::new(ip(&a[4..8]), port(&a[10..12])),
            })
        }
        _ => {
            let a = addresses("IPv6", 36)?;
            let ip = |b: &[u8]| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(&a[0..16]), port(&a[32..34])),
                destination: SocketAddr::new(ip(&a[16..32]), port(&a[34..36])),
            })
        }
    }
}

/// A v1 line, `PROXY` to CRLF included.
pub fn parse_v1(line: &[u8]) -> Result<ProxyHeader, HeaderError> {
    if line.len() > MAX_V1_LINE {
        return Err(HeaderError::V1TooLong);
    }
    let body = line
        .strip_prefix(V1_PREFIX)
        .and_then(|l| l.strip_suffix(b"\r\n"))
        .ok_or(HeaderError::V1("not PROXY … CRLF"))?;
    let body = std::str::from_utf8(body).map_err(|_| HeaderError::V1("not ASCII"))?;
    let mut fields = body.split(' ');
    let protocol = fields.next().unwrap_or_default();
    if protocol == "UNKNOWN" {
        return Ok(ProxyHeader::Unknown);
    }
    let v6 = match protocol {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(HeaderError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || fields.next().ok_or(HeaderError::V1("too few fields"));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(HeaderError::V1("too many fields"));
    }
    let ip = |s: &str| match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_ipv6() == v6 => Ok(ip),
        Ok(_) => Err(HeaderError::V1("address of the other family")),
        Err(_) => Err(HeaderError::V1("not an IP address")),
    };
    let port = |s: &str| {
        let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
        let canonical = s == "0" || !s.starts_with('0');
        match s.parse::<u16>() {
            Ok(p) if digits && canonical => Ok(p),
            _ => Err(HeaderError::V1("not a port")),
        }
    };
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

/// `header` as HAProxy's `send-proxy-v2` writes it, followed by `tlvs`
/// (raw, as they go on the wire). For tests and tools; Roost never sends
/// one.
pub fn encode_v2(header: &ProxyHeader, tlvs: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    let mut payload = Vec::new();
    let (command, family) = match header {
        ProxyHeader::Local => (0x20, 0x00),
        ProxyHeader::Unknown => (0x21, 0x00),
        ProxyHeader::Proxied {
            source,
            destination,
        } => {
            let family = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    payload.extend(s.octets());
                    payload.extend(d.octets());
                    0x11
                }
                (s, d) => {
                    payload.extend(v6(s).octets());
                    payload.extend(v6(d).octets());
                    0x21
                }
            };
            payload.extend(source.port().to_be_bytes());
            payload.extend(destination.port().to_be_bytes());
            (0x21, family)
        }
    };
    payload.extend_from_slice(tlvs);
    out.push(command);
    out.push(family);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.extend(len.to_be_bytes());
    out.extend(payload);
    out
}

/// `header` as a v1 line (`send-proxy`). An IPv4 and an IPv6 address
/// together go as IPv6.
pub fn encode_v1(header: &ProxyHeader) -> Vec<u8> {
    match header {
        ProxyHeader::Local | ProxyHeader::Unknown => b"PROXY UNKNOWN\r\n".to_vec(),
        ProxyHeader::Proxied {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => format!(
                "PROXY TCP4 {s} {d} {} {}\r\n",
                source.port(),
                destination.port()
            ),
            (s, d) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                v6(s),
                v6(d),
                source.port(),
                destination.port()
            ),
        }
        .into_bytes(),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A complete header at the start of `bytes` and its length, as the reader
/// would take it from a socket; for tests.
pub fn parse(bytes: &[u8]) -> Result<(ProxyHeader, usize), HeaderError> {
    let first: &[u8; 12] = bytes
        .get(..12)
        .and_then(|b| b.try_into().ok())
        .ok_or(HeaderError::Missing)?;
    match start(first)? {
        Start::V2 => {
            let preamble: &[u8; V2_PREAMBLE] = bytes
                .get(..V2_PREAMBLE)
                .and_then(|b| b.try_into().ok())
                .ok_or(HeaderError::Short {
                    family: "preamble",
                    len: bytes.len(),
                })?;
            let len = v2_payload_len(preamble)?;
            let payload = bytes
                .get(V2_PREAMBLE..V2_PREAMBLE + len)
                .ok_or(HeaderError::Short {
                    family: "announced",
                    len: bytes.len() - V2_PREAMBLE,
                })?;
            Ok((parse_v2(preamble, payload)?, V2_PREAMBLE + len))
        }
        Start::V1 => {
            let window = &bytes[..bytes.len().min(MAX_V1_LINE)];
            let end = window
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or(HeaderError::V1TooLong)?;
            Ok((parse_v1(&bytes[..end + 2])?, end + 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        ]
    }

    fn header() -> impl Strategy<Value = ProxyHeader> {
        prop_oneof![
            Just(ProxyHeader::Local),
            Just(ProxyHeader::Unknown),
            (addr(), addr()).prop_map(|(source, destination)| ProxyHeader::Proxied {
                source,
                destination
            }),
        ]
    }

    /// What a header becomes when both addresses must share a family.
    fn same_family(h: ProxyHeader) -> ProxyHeader {
        match h {
            ProxyHeader::Proxied {
                source,
                destination,
            } if source.is_ipv4() != destination.is_ipv4() => ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V6(v6(source.ip())), source.port()),
                destination: SocketAddr::new(IpAddr::V6(v6(destination.ip())), destination.port()),
            },
            h => h,
        }
    }

    proptest! {
        #[test]
        fn v2_round_trips_with_any_tlvs_and_stops_at_its_end(
            h in header(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..512),
            after in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = encode_v2(&h, &tlvs);
            let len = bytes.len();
            bytes.extend(&after);
            prop_assert_eq!(parse(&bytes), Ok((same_family(h), len)));
        }

        #[test]
        fn v1_round_trips_and_stops_at_its_end(
            h in header(),
            after in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = encode_v1(&h);
            let len = bytes.len();
            prop_assert!(len <= MAX_V1_LINE);
            bytes.extend(&after);
            let expected = match same_family(h) {
                ProxyHeader::Local => ProxyHeader::Unknown,
                h => h,
            };
            prop_assert_eq!(parse(&bytes), Ok((expected, len)));
        }

        #[test]
        fn any_bytes_give_a_header_or_an_error_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            if let Ok((_, len)) = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        #[test]
        fn a_corrupted_v2_header_is_refused_or_read_to_its_announced_end(
            h in header(),
            at in 12usize..40,
            with in any::<u8>(),
        ) {
            let mut bytes = encode_v2(&h, &[]);
            if at < bytes.len() {
                bytes[at] = with;
            }
            if let Ok((_, len)) = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        #[test]
        fn v1_lines_of_junk_never_panic(tail in "[ -~]{0,120}") {
            let line = format!("PROXY {tail}\r\n");
            if let Ok((_, len)) = parse(line.as_bytes()) {
                prop_assert!(len <= MAX_V1_LINE);
                prop_assert!(tail.starts_with("UNKNOWN") || tail.starts_with("TCP"));
            }
        }
    }

    #[test]
    fn haproxy_tcp4_header_is_read() {
        // As HAProxy 2.x writes it for a client 192.0.2.10:51000 reaching
        // 198.51.100.1:8883.
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend([0x21, 0x11, 0x00, 0x0c]);
        bytes.extend([192, 0, 2, 10, 198, 51, 100, 1]);
        bytes.extend(51000u16.to_be_bytes());
        bytes.extend(8883u16.to_be_bytes());
        assert_eq!(
            parse(&bytes),
            Ok((
                ProxyHeader::Proxied {
                    source: "192.0.2.10:51000".parse().unwrap(),
                    destination: "198.51.100.1:8883".parse().unwrap(),
                },
                28
            ))
        );
    }

    #[test]
    fn each_refusal_says_why() {
        let mut v3 = encode_v2(&ProxyHeader::Local, &[]);
        v3[12] = 0x30;
        assert_eq!(parse(&v3), Err(HeaderError::Version(3)));
        let mut cmd = encode_v2(&ProxyHeader::Local, &[]);
        cmd[12] = 0x22;
        assert_eq!(parse(&cmd), Err(HeaderError::Command(2)));
        let mut big = encode_v2(&ProxyHeader::Local, &[]);
        big[14..16].copy_from_slice(&65535u16.to_be_bytes());
        assert_eq!(parse(&big), Err(HeaderError::TooLarge(65535)));
        let mut short = encode_v2(&ProxyHeader::Unknown, &[0; 4]);
        short[13] = 0x11;
        assert!(matches!(parse(&short), Err(HeaderError::Short { .. })));
        let mut udp = encode_v2(&ProxyHeader::Unknown, &[0; 12]);
        udp[13] = 0x12;
        assert_eq!(parse(&udp), Err(HeaderError::Transport(2)));
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00"),
            Err(HeaderError::Missing)
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 080 9\r\n"),
            Err(HeaderError::V1("not a port"))
        );
        assert_eq!(
            parse(b"PROXY TCP4 ::1 5.6.7.8 80 9\r\n"),
            Err(HeaderError::V1("address of the other family"))
        );
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        assert_eq!(parse(long.as_bytes()), Err(HeaderError::V1TooLong));
    }
}
