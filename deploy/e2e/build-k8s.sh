#!/usr/bin/env bash
# build-k8s.sh — build the pinned kube-apiserver and kubectl for Berth's
# end-to-end tests, and install Debian packages when their commands are
# missing: etcd-server (for etcd), the linter named shellcheck, chromium (the
# browser test), iproute2 (its test network namespace) and knot (the DNS
# server the RFC 2136 plugin's tests and the gateway's DNS tests run against).
#
# The Kubernetes version is whatever deploy/e2e/k8s/go.mod requires of
# k8s.io/kubernetes. Binaries go to
#   ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/k8s/<version>/bin/
# and are rebuilt only when they are missing, report another version, or were
# built from a different go.mod/go.sum. The last line printed on stdout is that
# bin directory; progress goes to stderr.
#
# Environment:
#   BERTH_CACHE_DIR       cache root (default $HOME/.cache/berth)
#   BERTH_SKIP_APT=1      do not install any Debian package with apt-get
#   K8S_GIT_COMMIT        optional upstream commit to stamp into the binaries
#                         (module zips carry no VCS data, so it is unknown
#                         by default)
#   GO                    go command to use (default: go on PATH, else
#                         /usr/local/go/bin/go)
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
mod_dir="$script_dir/k8s"

log() { printf 'build-k8s: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -f "$mod_dir/go.mod" && -f "$mod_dir/go.sum" ]] || die "missing $mod_dir/go.mod or go.sum"

# The pinned version, read from the tools module: "require k8s.io/kubernetes vX.Y.Z".
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' "$mod_dir/go.mod" | head -n1)
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "cannot read the k8s.io/kubernetes version from $mod_dir/go.mod (got '$k8s_version')"
k8s_major=${BASH_REMATCH[1]}
k8s_minor=${BASH_REMATCH[2]}

cache_root=${BERTH_CACHE_DIR:-${HOME:?HOME is not set}/.cache/berth}
version_dir="$cache_root/k8s/$k8s_version"
bin_dir="$version_dir/bin"

# ---------------------------------------------------------------------------
# Debian packages: etcd (etcd-server, 3.4.23 on bookworm), shellcheck,
# chromium, iproute2, nginx-light and knot (3.2 on bookworm).
# ---------------------------------------------------------------------------
apt_install() {
	local pkgs=("$@")
	if [[ "${BERTH_SKIP_APT:-}" == 1 ]]; then
		log "BERTH_SKIP_APT=1: not installing ${pkgs[*]}"
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${pkgs[*]} by hand"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install ${pkgs[*]} by hand"
		sudo=(sudo)
	fi
	log "installing ${pkgs[*]} with apt-get"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; then
		log "apt-get install failed; running apt-get update and retrying"
		"${sudo[@]}" apt-get update -q >&2
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
	fi
}

missing_pkgs=()
command -v etcd >/dev/null 2>&1 || missing_pkgs+=(etcd-server)
command -v shellcheck >/dev/null 2>&1 || missing_pkgs+=(shellcheck)
# The browser test (gateway/browser_e2e_linux_test.go) drives Debian's
# chromium and puts its tenant server in a network namespace (iproute2).
[[ -x /usr/bin/chromium ]] || missing_pkgs+=(chromium)
command -v ip >/dev/null 2>&1 || missing_pkgs+=(iproute2)
# The replicas test (deploy/e2e/replicas) balances three Berths with nginx.
[[ -x /usr/sbin/nginx ]] || missing_pkgs+=(nginx-light)
# The DNS tests (sdk/testpeer/knot.go) run knotd and knotc from knot.
[[ -x /usr/sbin/knotd && -x /usr/sbin/knotc ]] || missing_pkgs+=(knot)
if ((${#missing_pkgs[@]} > 0)); then
	apt_install "${missing_pkgs[@]}"
fi

# ---------------------------------------------------------------------------
# kube-apiserver and kubectl.
# ---------------------------------------------------------------------------

# The stamp ties the cached binaries to the exact module graph they came from.
stamp_want=$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -d' ' -f1)

binaries_ok() {
	local dir=$1 out
	[[ -x "$dir/kube-apiserver" && -x "$dir/kubectl" && -f "$dir/.stamp" ]] || return 1
	[[ "$(<"$dir/.stamp")" == "$stamp_want" ]] || return 1
	# Ask both binaries for their version at once (each takes ~0.2s to start).
	# Expected lines: "Kubernetes v1.31.14" and "Client Version: v1.31.14"; the
	# kubectl flags keep it from reading a kubeconfig or contacting a server.
	out=$(
		"$dir/kube-apiserver" --version 2>/dev/null &
		"$dir/kubectl" version --client --kubeconfig=/dev/null 2>/dev/null
		wait
	) || true
	grep -qx "Kubernetes $k8s_version" <<<"$out" || return 1
	grep -qx "Client Version: $k8s_version" <<<"$out" || return 1
}

if binaries_ok "$bin_dir"; then
	printf '%s\n' "$bin_dir"
	exit 0
fi

go_cmd=${GO:-}
if [[ -z "$go_cmd" ]]; then
	if command -v go >/dev/null 2>&1; then
		go_cmd=go
	elif [[ -x /usr/local/go/bin/go ]]; then
		go_cmd=/usr/local/go/bin/go
	else
		die "no go command found (set GO=/path/to/go)"
	fi
fi

mkdir -p "$version_dir"
# One build at a time per version: parallel test runs wait for the first build.
exec 9>"$version_dir/.lock"
if ! flock -n 9; then
	log "another build of $k8s_version is running; waiting for it"
	flock 9
fi
if binaries_ok "$bin_dir"; then
	printf '%s\n' "$bin_dir"
	exit 0
fi

# buildDate is the commit time of the module version, as the module proxy
# reports it, so that rebuilds give byte-identical binaries.
build_date=$(cd "$mod_dir" && GOWORK=off GOFLAGS=-mod=readonly "$go_cmd" list -m -json k8s.io/kubernetes 2>/dev/null |
	sed -n 's/^[[:space:]]*"Time": "\([^"]*\)".*/\1/p') || build_date=""
if [[ -z "$build_date" ]]; then
	build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	log "module time of k8s.io/kubernetes $k8s_version unknown; using the current time as buildDate"
fi
git_commit=${K8S_GIT_COMMIT:-unknown}

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$k8s_version"
	ldflags+=" -X $pkg.gitMajor=$k8s_major"
	ldflags+=" -X $pkg.gitMinor=$k8s_minor"
	ldflags+=" -X $pkg.gitCommit=$git_commit"
	ldflags+=" -X $pkg.gitTreeState=archive"
	ldflags+=" -X $pkg.buildDate=$build_date"
done

tmp_dir=$(mktemp -d "$version_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

log "building kube-apiserver and kubectl $k8s_version into $bin_dir (first build takes a long time)"
start=$SECONDS
(
	cd "$mod_dir"
	# GOWORK=off and -mod=readonly: build exactly what go.mod/go.sum pin.
	GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 "$go_cmd" build \
		-trimpath -ldflags "$ldflags" -o "$tmp_dir/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
)
printf '%s\n' "$stamp_want" >"$tmp_dir/.stamp"
binaries_ok "$tmp_dir" || die "the freshly built binaries do not report $k8s_version"
chmod 0755 "$tmp_dir"

rm -rf "$bin_dir"
mv "$tmp_dir" "$bin_dir"
trap - EXIT
log "built in $((SECONDS - start))s: $(du -sh "$bin_dir"/kube-apiserver "$bin_dir"/kubectl | awk '{printf "%s %s  ", $2, $1}')"
printf '%s\n' "$bin_dir"
