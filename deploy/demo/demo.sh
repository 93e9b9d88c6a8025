#!/usr/bin/env bash
# demo.sh — Berth in one command: `make demo` runs `demo.sh start`,
# `make demo-stop` runs `demo.sh stop`.
#
# start: builds berth and the provisioner-local plugin, starts Berth on the
# embedded default configuration (plus the plugin as its provisioner),
# signs in with the berth command, creates a local cluster (a real etcd and
# kube-apiserver on this machine), writes a kubeconfig whose user is the
# berth credential plugin and runs `kubectl get namespaces` through Berth.
# stop: signs out, stops Berth and the cluster, and removes the demo's
# directory.
#
# Everything the demo writes is under $BERTH_DEMO_DIR (default ./.demo):
# Berth's data, its log, the cluster, the credentials (XDG_CONFIG_HOME) and
# the kubeconfig. Nothing of yours (~/.config/berth, ~/.kube/config) is
# touched.
#
# Environment:
#   BERTH_DEMO_DIR         the demo's directory (default ./.demo)
#   BERTH_DEMO_BIN         where berth and the plugin are built (default ./bin)
#   BERTH_DEMO_HTTP_ADDR   Berth's HTTP listener (default 127.0.0.1:8080, as make run)
#   BERTH_DEMO_HTTPS_ADDR  its HTTPS listener (default 127.0.0.1:8443, as make run)
#   BERTH_DEMO_PORTS       first and last port of the cluster (default 17000-17099)
#   GO                     the go command (default: go)
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
demo_dir=${BERTH_DEMO_DIR:-$root/.demo}
bin_dir=${BERTH_DEMO_BIN:-$root/bin}
http_addr=${BERTH_DEMO_HTTP_ADDR:-127.0.0.1:8080}
https_addr=${BERTH_DEMO_HTTPS_ADDR:-127.0.0.1:8443}
ports=${BERTH_DEMO_PORTS:-17000-17099}
go_cmd=${GO:-go}
berth_url="https://$https_addr"
pid_file="$demo_dir/berth.pid"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# The demo's own environment: its credentials and kubeconfig only.
export XDG_CONFIG_HOME="$demo_dir/config"
export KUBECONFIG="$demo_dir/kubeconfig"

running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

start() {
  command -v curl >/dev/null || die "curl is needed: sudo apt-get install -y curl"
  if running; then
    die "the demo is already running (Berth pid $(cat "$pid_file")): make demo-stop first"
  fi
  mkdir -p "$demo_dir"
  chmod 700 "$demo_dir"
  demo_dir=$(cd -- "$demo_dir" && pwd -P)

  step "Building kube-apiserver and kubectl once (cached in ~/.cache/berth; about 20 minutes the first time)"
  local k8s_bin
  k8s_bin=$(bash "$root/deploy/e2e/build-k8s.sh" | tail -n1)
  local kubectl="$k8s_bin/kubectl" apiserver="$k8s_bin/kube-apiserver" etcd
  etcd=$(command -v etcd || true)
  [[ -x "$kubectl" && -x "$apiserver" && -n "$etcd" ]] || die "kubectl, kube-apiserver or etcd missing after build-k8s.sh"

  step "Building berth and the provisioner-local plugin into $bin_dir"
  mkdir -p "$bin_dir"
  (cd "$root" && "$go_cmd" build -trimpath -o "$bin_dir/berth" ./cmd/berth)
  (cd "$root/plugins/provisioner-local" && "$go_cmd" build -trimpath -o "$bin_dir/provisioner-local" .)
  local berth="$bin_dir/berth" sum
  sum=$(sha256sum "$bin_dir/provisioner-local" | cut -d' ' -f1)

  step "Starting Berth on the embedded default configuration, with provisioner-local as its provisioner"
  # The admin password is the demo's own, kept beside its data (0600).
  local password
  password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  (umask 077 && printf '%s\n' "$password" >"$demo_dir/admin-password")
  cat >"$demo_dir/berth.yaml" <<EOF
# The demo's additions to the embedded default (configs/berth.yaml).
provisioning:
  provisioner: local
plugins:
  instances:
    - name: local
      path: $bin_dir/provisioner-local
      sha256: $sum
      required: true
      capabilities: [provisioner]
      config:
        data_dir: $demo_dir/clusters
        etcd_path: $etcd
        kube_apiserver_path: $apiserver
        port_range_start: ${ports%-*}
        port_range_end: ${ports#*-}
        max_clusters: 1
        stop_on_exit: true
EOF
  BERTH_DATA_DIR="$demo_dir/data" BERTH_HTTP_ADDR="$http_addr" BERTH_HTTPS_ADDR="$https_addr" \
    BERTH_ADMIN_PASSWORD="$password" BERTH_LOG_FORMAT=text \
    setsid "$berth" serve --config "$demo_dir/berth.yaml" >"$demo_dir/berth.log" 2>&1 </dev/null &
  echo $! >"$pid_file"
  local i
  for ((i = 0; i < 120; i++)); do
    curl -fsk "$berth_url/readyz" >/dev/null 2>&1 && break
    running || die "Berth exited; its log ($demo_dir/berth.log) ends with:
$(tail -n 20 "$demo_dir/berth.log")"
    sleep 0.5
  done
  curl -fsk "$berth_url/readyz" >/dev/null || die "Berth did not become ready; see $demo_dir/berth.log"
  echo "Berth is serving at $berth_url (log: $demo_dir/berth.log)"

  step "Trusting Berth's self-signed certificate: $berth_url/ca.crt"
  curl -fsk "$berth_url/ca.crt" -o "$demo_dir/berth-ca.crt"
  echo "saved as $demo_dir/berth-ca.crt"

  step "berth login $berth_url --username admin --password-stdin --certificate-authority $demo_dir/berth-ca.crt"
  "$berth" login "$berth_url" --username admin --password-stdin --certificate-authority "$demo_dir/berth-ca.crt" <"$demo_dir/admin-password"

  step "berth clusters create demo --wait   (provisioner-local starts an etcd and a kube-apiserver)"
  "$berth" clusters create demo --wait

  step "berth clusters"
  "$berth" clusters

  step "berth kubeconfig demo --merge   (its user is the berth credential plugin: no secret in the file)"
  "$berth" kubeconfig demo --merge

  step "kubectl get namespaces   (through Berth, as admin)"
  "$kubectl" get namespaces

  cat <<EOF

The demo is running. To go on in this shell:

  export XDG_CONFIG_HOME=$XDG_CONFIG_HOME KUBECONFIG=$KUBECONFIG PATH=$bin_dir:$k8s_bin:\$PATH
  berth whoami; berth operations; kubectl get namespaces

The admin password is in $demo_dir/admin-password. Stop and clean up with:

  make demo-stop
EOF
}

stop() {
  if [[ ! -d "$demo_dir" ]]; then
    echo "no demo in $demo_dir"
    return 0
  fi
  demo_dir=$(cd -- "$demo_dir" && pwd -P)
  export XDG_CONFIG_HOME="$demo_dir/config"
  if running; then
    step "berth logout"
    "$bin_dir/berth" logout || true
    step "Stopping Berth (pid $(cat "$pid_file")) and, with it, the cluster"
    local pid i
    pid=$(cat "$pid_file")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "Berth did not stop in 60 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # Control planes the plugin left running (Berth killed, say): each
  # process leads its own group, named by its pid file.
  local f
  shopt -s nullglob
  for f in "$demo_dir"/clusters/clusters/*/run/*.pid; do
    kill -TERM -- "-$(cat "$f")" 2>/dev/null || true
  done
  step "Removing $demo_dir"
  rm -rf -- "$demo_dir"
  echo "The demo is stopped and cleaned up."
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: demo.sh start|stop" ;;
esac
