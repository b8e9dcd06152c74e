# rumqttd for scripts/bench: installed from crates.io into a cache under the
# cargo target directory, configured like the other brokers (mutual TLS on
# the same certificates, limits raised so the loads fit, the connection
# throttle off) and started on a free loopback port. Sourced, not run.

RUMQTTD_VERSION=0.20.0
# Client certificates are only verified with this feature; without it
# rumqttd ignores the CA and accepts any TLS client.
RUMQTTD_FEATURES=verify-client-cert

# The directory holding bin/rumqttd for this version and feature set.
rumqttd_root() {
  echo "${CARGO_TARGET_DIR:-target}/bench-peers/rumqttd-$RUMQTTD_VERSION-$RUMQTTD_FEATURES"
}

# Builds rumqttd unless the cache already has it (a few minutes on two
# cores). Its build directory is removed once the binary is installed.
#
# Not --locked: the lock file published with 0.20.0 pins metrics 0.22.1,
# which current Rust refuses to compile (E0521, "borrowed data escapes",
# rust-lang/rust#141402); unlocked, its dependencies resolve to the newest
# versions its Cargo.toml allows (metrics 0.22.4 compiles). rumqttd's own
# code is 0.20.0 either way.
rumqttd_install() {
  local root
  root=$(rumqttd_root)
  [ -x "$root/bin/rumqttd" ] && return 0
  echo "== cargo install rumqttd $RUMQTTD_VERSION --features $RUMQTTD_FEATURES (once, into $root)"
  mkdir -p "$root"
  cargo install rumqttd --version "$RUMQTTD_VERSION" --features "$RUMQTTD_FEATURES" \
    --root "$root" --target-dir "$root/build" --quiet
  rm -rf "$root/build"
}

# Writes the configuration, starts rumqttd, sets PID[rumqttd] and
# ADDR[rumqttd].
#
# What 0.20.0 has, and what is set:
# - one MQTT 3.1.1 listener ([v4]) with rustls, the same server certificate
#   and key as Roost's, and client certificates verified against Roost's CA
#   (only the first certificate of `capath` is trusted; Roost's root-ca.pem
#   holds one);
# - the connection throttle off: `next_connection_delay_ms` is a sleep after
#   every accepted connection in the accept loop (its shipped config has 1);
# - `max_connections` above the idle load plus headroom (the router answers
#   no CONNACK past it);
# - `max_payload_size` (the largest incoming packet) at 256 KiB, above AWS
#   IoT's 128 KB payload;
# - `max_inflight_count` at 100: despite its name it is how many packets
#   one read hands to the router; what a client may have in flight towards
#   it is fixed at 100 in the router, as Roost's aws profile and Mosquitto's
#   max_inflight_messages here;
# - `max_outgoing_packet_count` at 200: how many QoS 0 messages one read of
#   a log forwards; the link's channel holds 200 anyway;
# - every subscription filter's log (`max_segment_size` x
#   `max_segment_count`) large enough for every message of the largest
#   load. rumqttd keeps what is published in a per-filter log in memory and
#   drops the oldest segment when the log is full; a subscriber still
#   reading a dropped segment skips it ("Read cursor start jumped"), and
#   those messages are lost. The logs are never freed while the broker runs.
# - no authentication or authorization: rumqttd has none (beyond optional
#   passwords), so it checks no policy at all; no console, no metrics
#   listener.
rumqttd_start() {
  local port segment_bytes largest need segments
  port=$(free_port)
  segment_bytes=$((100 * 1024 * 1024))
  largest=$(printf '%s\n' "$MESSAGES" "$UNPACED_MESSAGES" "$FANOUT_MESSAGES" \
    "$((LAT_RATE * LAT_SECONDS))" | sort -n | tail -n 1)
  # rumqttd counts 4 bytes + topic + payload per message; topics here are
  # under 48 bytes.
  need=$((largest * (PAYLOAD + 52)))
  segments=$(((need + segment_bytes - 1) / segment_bytes + 1))
  [ "$segments" -ge 10 ] || segments=10
  cat >"$work/rumqttd.toml" <<CONF
id = 0

[router]
max_connections = $((IDLE + 1000))
max_outgoing_packet_count = 200
max_segment_size = $segment_bytes
max_segment_count = $segments

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0
    [v4.1.tls]
    capath = "$CA"
    certpath = "$SERVER_CERT"
    keypath = "$SERVER_KEY"
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 262144
    max_inflight_count = 100
    dynamic_filters = true
CONF
  "$(rumqttd_root)/bin/rumqttd" --quiet --config "$work/rumqttd.toml" >"$work/rumqttd.log" 2>&1 &
  PID[rumqttd]=$!
  ADDR[rumqttd]="127.0.0.1:$port"
}

rumqttd_version() {
  echo "rumqttd $RUMQTTD_VERSION (--features $RUMQTTD_FEATURES)"
}
