# Roost for scripts/bench: started on free loopback ports in a fresh data
# directory, with a thing, an allow-all policy and a device certificate made
# through the control plane, as a user would. Its CA, server certificate and
# device certificate are the ones every broker in the run serves and sees.
# Sourced, not run.

# Starts Roost (aws profile) and sets PID[roost], ADDR[roost] and the PKI
# paths the other brokers use: CA, SERVER_CERT, SERVER_KEY, CLIENT_CERT,
# CLIENT_KEY.
roost_start() {
  local data="$work/roost-data"
  "$ROOST" serve --data-dir "$data" --api-listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0 \
    --https-listen 127.0.0.1:0 \
    --mqtt-profile aws ${BENCH_ROOST_ARGS:-} >"$work/roost.stdout" 2>"$work/roost.log" &
  PID[roost]=$!
  for _ in $(seq 300); do
    [ -s "$data/endpoints.json" ] && break
    kill -0 "${PID[roost]}" 2>/dev/null || { cat "$work/roost.log" >&2; exit 1; }
    sleep 0.05
  done
  ADDR[roost]=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["mqtt"])' \
    "$data/endpoints.json")

  # Through the control plane with the real aws CLI.
  export AWS_SHARED_CREDENTIALS_FILE="$data/credentials" AWS_CONFIG_FILE="$data/aws-config" \
    AWS_PROFILE=roost AWS_PAGER="" AWS_MAX_ATTEMPTS=1
  .venv/bin/aws iot create-thing --thing-name bench >/dev/null
  .venv/bin/aws iot create-policy --policy-name bench-allow-all --policy-document \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}' \
    >/dev/null
  "$ROOST" cert create --thing bench --out "$work/device" --data-dir "$data" >"$work/cert.out"
  local cert_arn
  cert_arn=$(sed -n 's/^certificateArn: //p' "$work/cert.out")
  .venv/bin/aws iot attach-policy --policy-name bench-allow-all --target "$cert_arn"

  CA="$data/root-ca.pem"
  SERVER_CERT="$data/server.pem"
  SERVER_KEY="$data/server.key"
  CLIENT_CERT="$work/device/certificate.pem.crt"
  CLIENT_KEY="$work/device/private.pem.key"
}

roost_version() {
  echo "roost $(git describe --always --dirty 2>/dev/null || echo "?")"
}
