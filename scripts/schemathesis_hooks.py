"""Schemathesis hooks for Sentinel's API (loaded by scripts/schemathesis.sh).

`POST /v1/events/stream` reads NDJSON, a media type schemathesis has no serializer for: a generated
body is sent as is when it is text, or one JSON document per line when it is a value.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return "".join(json.dumps(v) + "\n" for v in value).encode()
    return (json.dumps(value) + "\n").encode()
