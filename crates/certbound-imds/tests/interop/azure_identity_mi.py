"""Unmodified azure-identity ManagedIdentityCredential against the certbound IMDS emulator.

The environment carries IDENTITY_ENDPOINT / IDENTITY_HEADER (App Service managed identity);
argv[1] is the scope, argv[2] (optional) a user-assigned client id. Prints one JSON line:
{"token": ..., "expires_on": ...}. Exits non-zero with the SDK's error otherwise.
"""
import json
import sys

from azure.identity import ManagedIdentityCredential


def main() -> int:
    scope = sys.argv[1]
    client_id = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    token = credential.get_token(scope)
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
