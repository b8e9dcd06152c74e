# Debian's Mosquitto for scripts/bench. Sourced, not run.
#
# The same server certificate and key (P-256) and CA as Roost; the same
# in-flight window towards a client as Roost's aws profile (100); Nagle off,
# as Roost has it. max_queued_messages is lifted (0: no limit) because
# Debian's 2.0.11 miscounts its per-client queue (fixed upstream in 2.0.13:
# "various fixes around inflight quota management"): in the fan-in QoS 1
# load it logs "Outgoing messages are being dropped" and drops messages with
# at most 500 outstanding, with the limit at 1,000 and even at 100,000.
# roost-bench's end-to-end window keeps every real queue at or below 500
# messages, so the bound is never needed. No acl_file: Mosquitto checks no
# authorization.

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

mosquitto_install() {
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || scripts/setup-test-env
}

# Writes the configuration, starts Mosquitto, sets PID[mosquitto] and
# ADDR[mosquitto].
mosquitto_start() {
  local port persistence
  port=$(free_port)
  if [ "$PERSISTENT" = 1 ]; then
    mkdir -p "$work/mosquitto-data"
    persistence="persistence true
persistence_location $work/mosquitto-data/"
  else
    persistence="persistence false"
  fi
  cat >"$work/mosquitto.conf" <<CONF
per_listener_settings false
user root
$persistence
log_dest file $work/mosquitto.log
set_tcp_nodelay true
max_inflight_messages 100
max_queued_messages 0
listener $port 127.0.0.1
cafile $CA
certfile $SERVER_CERT
keyfile $SERVER_KEY
require_certificate true
use_identity_as_username true
CONF
  "$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/mosquitto.stdout" 2>&1 &
  PID[mosquitto]=$!
  ADDR[mosquitto]="127.0.0.1:$port"
}

mosquitto_version() {
  # `mosquitto -h` prints its version and exits with 3.
  { "$MOSQUITTO" -h 2>/dev/null || true; } | head -n 1
}
