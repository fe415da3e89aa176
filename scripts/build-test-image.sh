#!/usr/bin/env bash
# Builds the Docker test image `mcp-warden-test-node:<hash of its inputs>` locally, without any
# registry: FROM scratch + /usr/bin/node + every library `ldd /usr/bin/node` lists (and the dynamic
# loader) + the compiled demo server and test fixtures + the node_modules packages they load.
#
# The package set is found by running the servers once (scripts/trace-runtime-files.mjs: a full MCP
# session each) and copying every package any loaded file belongs to, whole, minus type
# declarations, source maps, TypeScript sources and markdown (~5 MB instead of the 110 MB
# node_modules).
#
# Idempotent: if an image with the computed tag exists, nothing is built. The last line on stdout is
# the tag (everything else goes to stderr). Needs `npm run build` to have been run (dist/).
#
#   scripts/build-test-image.sh            # build if missing, print the tag
#   scripts/build-test-image.sh --print-tag # only compute and print the tag
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="mcp-warden-test-node"
NODE_BIN="$(readlink -f "$(command -v node)")"
say() { printf 'build-test-image: %s\n' "$*" >&2; }

cd "$ROOT"
for f in dist/src/demo/demo-server.js dist/test/fixtures/fixture-server.js; do
  [ -f "$f" ] || { say "$f missing: run 'npm run build' first"; exit 1; }
done

DOCKERFILE='FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
WORKDIR /app
LABEL mcp-warden.test-image=true
CMD ["/usr/bin/node", "/app/dist/src/demo/demo-server.js"]
'

# --- what goes into /app -------------------------------------------------------------------------
traced="$(node scripts/trace-runtime-files.mjs "$ROOT" \
  dist/src/demo/demo-server.js \
  'dist/test/fixtures/echo-server.js:echo:{"message":"trace"}')"
packages="$(printf '%s\n' "$traced" | grep '^node_modules/' | sed -E 's#^(node_modules/(@[^/]+/)?[^/]+)/.*#\1#' | sort -u)"
[ -n "$packages" ] || { say "trace found no node_modules packages"; exit 1; }
app_files="$( {
  echo package.json
  ls dist/src/demo/*.js dist/test/fixtures/*.js
  for p in $packages; do
    find "$p" -type f ! -name '*.d.ts' ! -name '*.d.cts' ! -name '*.d.mts' ! -name '*.map' \
      ! -name '*.ts' ! -name '*.md' ! -name '*.markdown'
  done
} | LC_ALL=C sort -u)"

# --- node and its libraries ----------------------------------------------------------------------
libs="$(ldd "$NODE_BIN" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | LC_ALL=C sort -u)"
[ -n "$libs" ] || { say "ldd $NODE_BIN listed no libraries"; exit 1; }

# --- tag = hash of every input (paths + contents + Dockerfile) -----------------------------------
hash="$( {
  printf '%s' "$DOCKERFILE"
  echo "node $(sha256sum "$NODE_BIN" | cut -d' ' -f1)"
  for l in $libs; do echo "$l $(sha256sum "$(readlink -f "$l")" | cut -d' ' -f1)"; done
  printf '%s\n' "$app_files" | tr '\n' '\0' | xargs -0 sha256sum
} | sha256sum | cut -c1-16)"
TAG="$REPO:$hash"

if [ "${1:-}" = "--print-tag" ]; then echo "$TAG"; exit 0; fi

if docker image inspect "$TAG" >/dev/null 2>&1; then
  say "$TAG exists"
  echo "$TAG"
  exit 0
fi

# --- build ---------------------------------------------------------------------------------------
started=$(date +%s%N)
ctx="$(mktemp -d /tmp/mcp-warden-test-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/app" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp -L "$NODE_BIN" "$rootfs/usr/bin/node"
for l in $libs; do
  mkdir -p "$rootfs$(dirname "$l")"
  cp -L "$l" "$rootfs$l"
done
printf '%s\n' "$app_files" | tr '\n' '\0' | xargs -0 cp --parents -t "$rootfs/app"
printf '%s' "$DOCKERFILE" >"$ctx/Dockerfile"
say "building $TAG: node $(node --version), $(echo "$libs" | wc -l) libraries, $(echo "$app_files" | wc -l) app files ($(du -sh "$rootfs/app" | cut -f1)), packages: $(echo $packages | sed 's#node_modules/##g')"
# The legacy builder needs no buildx plugin and no registry (FROM scratch).
DOCKER_BUILDKIT=0 docker build --quiet --label "mcp-warden.test-image=true" -t "$TAG" "$ctx" >&2
say "built $TAG in $(( ($(date +%s%N) - started) / 1000000 )) ms ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
# Older builds of the test image (other inputs) are ~100 MB each: drop them (one still used by a
# running container is kept by the engine; that is fine).
for old in $(docker image ls "$REPO" --format '{{.Repository}}:{{.Tag}}' | grep -v -x -F "$TAG" || true); do
  docker rmi "$old" >/dev/null 2>&1 && say "removed old $old" || true
done
echo "$TAG"
