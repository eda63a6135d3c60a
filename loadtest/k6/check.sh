#!/usr/bin/env bash
# Type-checks the k6 scripts against @types/k6 (k6 itself is not needed).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npx tsc --noEmit
echo "k6 scripts type-check: ok"
