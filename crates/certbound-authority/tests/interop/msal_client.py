#!/usr/bin/env python3
"""Unmodified MSAL for Python against the certbound development authority.

Usage: msal_client.py ISSUER CLIENT_ID CERT_PEM KEY_PEM CA_PEM SCOPE MODE
MODE: "sha1"   -> client_credential {private_key, thumbprint (SHA-1 hex)}   (x5t header)
      "x5c"    -> client_credential {private_key, public_certificate}        (x5c + x5t#S256)
      "secret" -> CERT_PEM is ignored and KEY_PEM is the client secret
Prints one JSON object: MSAL's result (access_token included) or its error.
"""
import hashlib
import json
import re
import sys

import msal


def main():
    issuer, client_id, cert_path, key_path, ca_path, scope, mode = sys.argv[1:8]
    if mode == "secret":
        credential = key_path
    else:
        with open(key_path) as f:
            key = f.read()
        with open(cert_path) as f:
            cert = f.read()
        if mode == "sha1":
            body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", cert, re.S).group(1)
            import base64
            der = base64.b64decode("".join(body.split()))
            credential = {"private_key": key, "thumbprint": hashlib.sha1(der).hexdigest()}
        else:
            credential = {"private_key": key, "public_certificate": cert}
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        oidc_authority=issuer,
        verify=ca_path,
    )
    result = app.acquire_token_for_client(scopes=[scope])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
