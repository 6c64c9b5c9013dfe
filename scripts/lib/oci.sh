# Sourced by scripts/test (from the repository's root), for devramps-local's Docker builds and
# imports (tests/docker_builds.rs) and devramps-aws's registry-to-registry copy (tests/oci_copy.rs,
# which starts a second docker-registry of its own; benches/oci_mirror.rs starts both):
# - install_oci_tools: installs Debian's buildah (a daemonless image builder), docker-registry
#   (the CNCF distribution registry) and skopeo when missing (apt-get; needs root).
# - start_registry: when DEVRAMPS_TEST_REGISTRY is unset, starts docker-registry on a free port
#   of 127.0.0.1 with its storage in a temporary folder (both gone when the calling script
#   exits), waits for it, and exports DEVRAMPS_TEST_REGISTRY=127.0.0.1:PORT. A
#   DEVRAMPS_TEST_REGISTRY already set is used as it is (a registry you started yourself).
install_oci_tools() {
  local missing=()
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian packages)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  fi
}

start_registry() {
  if [ -n "${DEVRAMPS_TEST_REGISTRY:-}" ]; then
    return 0
  fi
  REGISTRY_DIR=$(mktemp -d)
  REGISTRY_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  /usr/bin/docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/log" 2>&1 &
  REGISTRY_PID=$!
  # Keeps whatever the caller already stops at exit (moto).
  local previous
  previous=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  trap "kill $REGISTRY_PID 2>/dev/null || true; rm -rf '$REGISTRY_DIR'; $previous" EXIT
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$REGISTRY_PORT/v2/')" >/dev/null 2>&1; then
      export DEVRAMPS_TEST_REGISTRY="127.0.0.1:$REGISTRY_PORT"
      echo "== docker-registry on $DEVRAMPS_TEST_REGISTRY"
      return 0
    fi
    if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
      echo "docker-registry exited; its log:"; cat "$REGISTRY_DIR/log"; exit 1
    fi
    sleep 0.1
  done
  echo "docker-registry did not answer on port $REGISTRY_PORT within 10 s; its log:"; cat "$REGISTRY_DIR/log"; exit 1
}
