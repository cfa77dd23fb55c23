#!/usr/bin/env python3
"""Peer for certbound's validation benchmark: PyJWT jwt.decode (ES256 signature, iss, aud,
exp; no certificate binding) of the same token with the same key as the Rust variants.

Usage: pyjwt_validate.py VALIDATE_JSON ITERS   (VALIDATE_JSON is written by `cb-bench setup`)
"""
import json
import sys
import time

import jwt


def main():
    with open(sys.argv[1]) as f:
        fx = json.load(f)
    iters = int(sys.argv[2])
    key = jwt.PyJWK(fx["jwk"]).key
    token, iss, aud = fx["token"], fx["issuer"], fx["audience"]

    def one():
        return jwt.decode(token, key=key, algorithms=["ES256"], audience=aud, issuer=iss)

    claims = one()
    assert claims["cnf"]["x5t#S256"] == fx["x5t#S256"]
    for _ in range(iters // 10):
        one()
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        one()
    ns = (time.perf_counter_ns() - t0) / iters
    print(json.dumps({"ns_per_op": ns, "iters": iters, "impl": f"PyJWT {jwt.__version__} jwt.decode (ES256, iss/aud/exp, no binding)"}))


if __name__ == "__main__":
    main()
