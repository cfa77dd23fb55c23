#!/usr/bin/env python3
"""Peer for certbound's cache-hit benchmark: MSAL for Python's
ConfidentialClientApplication.acquire_token_for_client, cache hit.

Usage: msal_cachehit.py ISSUER CLIENT_ID CERT_PEM KEY_PEM CA_PEM SCOPE ITERS
One real token is acquired from the certbound development authority (oidc_authority,
certificate credential: MSAL signs a private_key_jwt assertion), then the timed loop asks
again and is served from MSAL's token cache. Prints one JSON object with ns_per_op.
"""
import base64
import hashlib
import json
import re
import sys
import time

import msal


def main():
    issuer, client_id, cert_path, key_path, ca_path, scope, iters = sys.argv[1:8]
    iters = int(iters)
    with open(key_path) as f:
        key = f.read()
    with open(cert_path) as f:
        cert = f.read()
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", cert, re.S).group(1)
    der = base64.b64decode("".join(body.split()))
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential={"private_key": key, "thumbprint": hashlib.sha1(der).hexdigest()},
        oidc_authority=issuer,
        verify=ca_path,
    )
    first = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in first:
        raise SystemExit("MSAL got no token: " + json.dumps({k: v for k, v in first.items() if k != "access_token"}))
    token = first["access_token"]
    for _ in range(iters // 10):
        app.acquire_token_for_client(scopes=[scope])
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        r = app.acquire_token_for_client(scopes=[scope])
    ns = (time.perf_counter_ns() - t0) / iters
    if r.get("access_token") != token or r.get("token_source", "cache") != "cache":
        raise SystemExit("MSAL did not serve the loop from its cache")
    print(json.dumps({"ns_per_op": ns, "iters": iters, "impl": f"msal {msal.__version__} acquire_token_for_client (cache hit)"}))


if __name__ == "__main__":
    main()
