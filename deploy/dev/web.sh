#!/usr/bin/env bash
# The browser code: web/sync/sync.ts (the port of the sync crate) must compile, strictly,
# to exactly the committed web/demo/sync.js (served by the API at /demo/sync.js with no
# build step). TypeScript comes from the npm registry, pinned by web/sync/package-lock.json.
# `deploy/dev/web.sh --write` rewrites web/demo/sync.js instead of checking it.
set -euo pipefail
cd "$(dirname "$0")/../../web/sync"
if [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ "${1:-}" = "--write" ]; then
  node_modules/.bin/tsc -p tsconfig.json
  echo "web/demo/sync.js rewritten"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
node_modules/.bin/tsc -p tsconfig.json --outDir "$out"
if ! diff -u ../demo/sync.js "$out/sync.js"; then
  echo "web/demo/sync.js is not what web/sync/sync.ts compiles to: run deploy/dev/web.sh --write" >&2
  exit 1
fi
echo "web: sync.ts compiles (strict) to the committed web/demo/sync.js"
