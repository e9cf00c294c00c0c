#!/usr/bin/env python3
"""Cross-checks Parley's Web Push and webhook cryptography with other implementations.

Run by CI through Tests/interop/test_notify_crypto.py. Needs `pip install http-ece cryptography` and a test build
(`flock /tmp/parley-build.lock swift build --build-tests`). It asks the Swift
tests for a sample (InteropSampleTests, enabled by PARLEY_WEBPUSH_SAMPLE), then:

- decrypts the aes128gcm body with http_ece (RFC 8188/8291) and the user agent's key;
- checks that http_ece reproduces the RFC 8291 Appendix A body the Swift test matches;
- verifies the VAPID JWT (header, claims, ES256 signature) with cryptography;
- recomputes the Standard Webhooks signature with hmac.

Usage: python3 Tests/notify/webpush_check.py   (from the package root)
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sample():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sample.json")
        subprocess.run(
            ["swift", "test", "--skip-build", "--filter", "InteropSampleTests"],
            env={**os.environ, "PARLEY_WEBPUSH_SAMPLE": path}, check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return json.load(f)


def check_body(s):
    key = serialization.load_pem_private_key(s["ua_private_pem"].encode(), password=None)
    plaintext = http_ece.decrypt(b64url(s["body"]), private_key=key, auth_secret=b64url(s["auth"]),
                                 version="aes128gcm")
    assert plaintext.decode() == s["plaintext"], plaintext
    print("ok  http_ece decrypts the Swift body:", plaintext.decode())


def check_rfc8291_vector():
    # RFC 8291 Appendix A: http_ece with the sender key and salt fixed gives the published body,
    # the same bytes PushMessageEncryptionTests expects from the Swift code.
    sender = ec.derive_private_key(int.from_bytes(b64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"), "big"),
                                   ec.SECP256R1())
    body = http_ece.encrypt(
        b"When I grow up, I want to be a watermelon", salt=b64url("DGv6ra1nlYgDCS1FRnbzlw"), private_key=sender,
        dh=b64url("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
        auth_secret=b64url("BTBZMqHH6r4Tts7J_aSIgg"), version="aes128gcm")
    expected = b64url("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
                      "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
                      "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
    assert body == expected, base64.urlsafe_b64encode(body)
    print("ok  http_ece gives the RFC 8291 Appendix A body")


def check_vapid(s):
    prefix, rest = s["authorization"].split(" ", 1)
    assert prefix == "vapid", prefix
    params = dict(part.split("=", 1) for part in rest.split(", "))
    assert params["k"] == s["vapid_public_key"]
    private = serialization.load_pem_private_key(s["vapid_private_pem"].encode(), password=None)
    point = private.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    assert b64url(params["k"]) == point, "k is not the PEM key's public point"

    header, claims, signature = params["t"].split(".")
    assert json.loads(b64url(header)) == {"typ": "JWT", "alg": "ES256"}
    body = json.loads(b64url(claims))
    assert body["aud"] == "https://updates.push.services.mozilla.com", body
    assert 0 < body["exp"] - s["now"] <= 24 * 3600, body
    assert body["sub"] == "mailto:ops@parley.example", body
    raw = b64url(signature)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url(params["k"]))
    public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    print("ok  cryptography verifies the VAPID JWT:", body)


def check_webhook(s):
    key = base64.b64decode(s["webhook_secret"].removeprefix("whsec_"))
    content = f'{s["webhook_id"]}.{s["now"]}.{s["webhook_body"]}'.encode()
    expected = "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert s["webhook_signature"] == expected, (s["webhook_signature"], expected)
    print("ok  hmac gives the Standard Webhooks signature:", expected)


if __name__ == "__main__":
    s = sample()
    check_body(s)
    check_rfc8291_vector()
    check_vapid(s)
    check_webhook(s)
    sys.exit(0)
