#!/usr/bin/env bash
# Regenerates the Go code for the Berth plugin protocol from
# berth/plugin/v1/*.proto (Go package pluginv1, generated code beside it).
#
# Pinned tools, so every machine produces byte-identical output:
#   protoc              Debian 12's protobuf-compiler 3.21.12 (libprotoc 3.21.12)
#   protoc-gen-go       google.golang.org/protobuf/cmd/protoc-gen-go         v1.36.12
#   protoc-gen-go-grpc  google.golang.org/grpc/cmd/protoc-gen-go-grpc        v1.6.2
#
# The two Go plugins are built with `go install pkg@version` into a cache
# directory; after the first run (or with a warm module cache) nothing is
# downloaded. protoc itself comes from apt when it is missing.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_VERSION=3.21.12

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${BERTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-tools}/protoc-gen-${PROTOC_GEN_GO_VERSION}-${PROTOC_GEN_GO_GRPC_VERSION}"

if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/timestamp.proto ]; then
	echo "gen.sh: installing protoc from Debian (protobuf-compiler, libprotobuf-dev)" >&2
	sudo_cmd=""
	if [ "$(id -u)" != 0 ]; then sudo_cmd=sudo; fi
	$sudo_cmd apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
fi
have="$(protoc --version | awk '{print $2}')"
if [ "$have" != "$PROTOC_VERSION" ]; then
	echo "gen.sh: protoc $have found, $PROTOC_VERSION expected; output may differ from the committed code" >&2
fi

if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-go-grpc" ]; then
	mkdir -p "$bin"
	GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
	GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi

# Files are named relative to sdk/proto ("berth/plugin/v1/plugin.proto") so
# their names in the global protobuf registry cannot clash with another
# package's "plugin.proto".
cd "$here"
PATH="$bin:$PATH" protoc \
	-I . -I /usr/include \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	berth/plugin/v1/*.proto
echo "gen.sh: generated $(ls "$here"/berth/plugin/v1/*.pb.go | wc -l) files in $here/berth/plugin/v1" >&2
