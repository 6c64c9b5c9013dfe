# Sourced by scripts/test and scripts/bench-s3 (from the repository's root): when
# AWS_ENDPOINT_URL is unset, installs moto (PyPI `moto[server]`) once into target/moto-venv,
# starts it on a free port of 127.0.0.1 (stopped when the calling script exits), waits for it,
# and exports AWS_ENDPOINT_URL with test credentials and region. An AWS_ENDPOINT_URL already set
# is used as it is (a moto you started yourself).
start_moto() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    return 0
  fi
  mkdir -p target
  if [ ! -x target/moto-venv/bin/moto_server ]; then
    echo "== installing moto[server] into target/moto-venv"
    python3 -m venv target/moto-venv
    target/moto-venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]'
  fi
  MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  target/moto-venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >target/moto.log 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  local moto_up=no
  for _ in $(seq 1 150); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/')" >/dev/null 2>&1; then
      moto_up=yes
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto_server exited; its log:"; cat target/moto.log; exit 1
    fi
    sleep 0.2
  done
  if [ "$moto_up" != yes ]; then
    echo "moto_server did not answer on port $MOTO_PORT within 30 s; its log:"; cat target/moto.log; exit 1
  fi
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  echo "== moto on $AWS_ENDPOINT_URL"
}
