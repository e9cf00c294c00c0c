"""Parley's Web Push (RFC 8291 aes128gcm, RFC 8292 VAPID) and Standard Webhooks signing,
checked by other implementations: http_ece decrypts what the Swift code encrypted and
reproduces the RFC 8291 Appendix A body, cryptography verifies the VAPID JWT, Python's
hmac recomputes the webhook signature. The sample comes from the Swift tests
(InteropSampleTests, with PARLEY_WEBPUSH_SAMPLE), so the test build must exist."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "notify"))
import webpush_check  # noqa: E402


@pytest.fixture(scope="module")
def sample():
    here = os.getcwd()
    os.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))
    try:
        return webpush_check.sample()
    finally:
        os.chdir(here)


def test_http_ece_decrypts_the_push_body(sample):
    webpush_check.check_body(sample)


def test_http_ece_reproduces_the_rfc8291_vector():
    webpush_check.check_rfc8291_vector()


def test_cryptography_verifies_the_vapid_jwt(sample):
    webpush_check.check_vapid(sample)


def test_hmac_recomputes_the_webhook_signature(sample):
    webpush_check.check_webhook(sample)
