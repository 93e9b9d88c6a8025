#!/usr/bin/env bash
# Runs the out-of-process proxy benchmark (deploy/bench/proxybench): Berth
# against the same backend reached directly, through nginx and through Go's
# httputil.ReverseProxy; sort and page of large pod lists; 1 000 concurrent
# watches. Installs what is missing first: wrk and nginx-light from Debian,
# vegeta (pinned) with go install. kube-apiserver and etcd come from
# deploy/e2e/build-k8s.sh (`make e2e-tools`, which `make bench-proxy` runs).
#
# Usage: deploy/bench/bench-proxy.sh [proxybench run flags], e.g.
#   deploy/bench/bench-proxy.sh -runs 5 -out /tmp/bench
set -euo pipefail
cd "$(dirname "$0")/../.."

VEGETA_VERSION=v12.13.0
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  echo "bench-proxy: installing ${missing[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bin_dir="${BERTH_CACHE_DIR:-$HOME/.cache/berth}/bench/bin"
vegeta="$bin_dir/vegeta"
if ! { [ -x "$vegeta" ] && go version -m "$vegeta" 2>/dev/null | grep -q "github.com/tsenart/vegeta/v12[[:space:]]*$VEGETA_VERSION"; }; then
  echo "bench-proxy: installing vegeta $VEGETA_VERSION into $bin_dir" >&2
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
fi

# A built binary, not go run: the benchmark starts copies of itself (the
# backend, the gateway, the proxies) and must be able to find them.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/proxybench" ./deploy/bench/proxybench
go build -o "$tmp/berth" ./cmd/berth
"$tmp/proxybench" run -repo . -vegeta "$vegeta" -berth "$tmp/berth" "$@"
