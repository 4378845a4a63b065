#!/usr/bin/env bash
# Fuzzes a running Sentinel daemon from its own OpenAPI document with schemathesis, once per role.
#
#   SENTINEL_URL=http://127.0.0.1:PORT \
#   SENTINEL_VIEWER_KEY=snl_… SENTINEL_OPERATOR_KEY=snl_… SENTINEL_ADMIN_KEY=snl_… \
#   scripts/schemathesis.sh
#
# The daemon must be a disposable one (a temporary data dir, observe mode): the admin pass adds and
# deletes decisions, posts events and sends notices. Checks: no 5xx (`not_a_server_error`) and every
# answer as the document says (`response_schema_conformance`). Any failure exits non-zero.
#
# schemathesis is installed from PyPI into a venv under the cargo target dir on first use
# (SCHEMATHESIS_VENV overrides where). SCHEMATHESIS_MAX_EXAMPLES bounds the cases per operation
# (default 20), so a run takes a minute or two.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
: "${SENTINEL_URL:?SENTINEL_URL: the base URL of the daemon, e.g. http://127.0.0.1:8000}"
: "${SENTINEL_VIEWER_KEY:?SENTINEL_VIEWER_KEY: a viewer API key}"
: "${SENTINEL_OPERATOR_KEY:?SENTINEL_OPERATOR_KEY: an operator API key}"
: "${SENTINEL_ADMIN_KEY:?SENTINEL_ADMIN_KEY: an admin API key}"
case "$SENTINEL_URL" in
  http://127.0.0.1:* | http://\[::1\]:* | http://localhost:*) ;;
  *) echo "schemathesis.sh: refusing to fuzz $SENTINEL_URL: loopback only" >&2; exit 2 ;;
esac

version="${SCHEMATHESIS_VERSION:-4.32.5}"
venv="${SCHEMATHESIS_VENV:-${CARGO_TARGET_DIR:-$root/target}/schemathesis-venv}"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $version\$"; then
  echo "schemathesis.sh: installing schemathesis $version into $venv" >&2
  # A venv that no longer runs (moved, or its python replaced) is made anew, not reused.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi
"$venv/bin/schemathesis" --version >/dev/null

examples="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
reports="${SCHEMATHESIS_REPORTS:-$(mktemp -d)}"
# schemathesis keeps a cache (`.schemathesis/`) in the working directory: not in the source tree.
mkdir -p "$reports"
reports="$(cd "$reports" && pwd)"
cd "$reports"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=schemathesis_hooks

status=0
for role in viewer operator admin; do
  var="SENTINEL_$(echo "$role" | tr a-z A-Z)_KEY"
  key="${!var}"
  echo "== schemathesis as $role ==" >&2
  # One worker: hypothesis describes its strategies by parsing lambdas with `ast`, which is not
  # thread-safe on Python 3.11 ("AST constructor recursion depth mismatch" as a runtime error).
  # The document itself is fetched with the same key (it is served to any authenticated role). The
  # key goes in both of the headers the document names, and schemathesis makes up no values for
  # them: a made-up `X-API-Key` would win over the bearer token and turn every case into a 401.
  if ! "$venv/bin/schemathesis" run "$SENTINEL_URL/v1/openapi.json" \
      --url "$SENTINEL_URL" \
      --header "Authorization: Bearer $key" \
      --header "X-API-Key: $key" \
      --generation-with-security-parameters false \
      --checks not_a_server_error,response_schema_conformance \
      --phases examples,coverage,fuzzing \
      --max-examples "$examples" \
      --workers 1 \
      --request-timeout 30 \
      --generation-database none \
      --suppress-health-check all \
      --no-color \
      --output-sanitize true \
      --report junit --report-junit-path "$reports/$role.xml"; then
    echo "schemathesis.sh: failures as $role (report: $reports/$role.xml)" >&2
    status=1
  fi
done
exit "$status"
