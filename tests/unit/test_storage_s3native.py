"""Which S3 options go to obstore and what obstore is told: the same behaviour s3fs would give them.

A store whose options obstore cannot honour exactly (botocore's credential chain, a profile, a private CA,
an option we do not translate) must keep every request on s3fs; the ones it takes must keep s3fs's
meaning: payload signing over HTTP, a checksum on PUT unless the site turned it off, our timeouts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stratus.storage import Timeouts, open_store
from stratus.storage.remote import S3Backend
from stratus.storage.s3native import native_s3
from stratus.storage.timeouts import s3_options

PLAIN = {"endpoint_url": "http://127.0.0.1:8333", "key": "AKIDNATIVE", "secret": "native-secret"}


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_CA_BUNDLE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"endpoint_url": "http://127.0.0.1:8333"}, "no explicit key: botocore's credential chain"),
        ({**PLAIN, "profile": "dev"}, "a profile"),
        ({**PLAIN, "config_kwargs": {"max_pool_connections": 50}}, "a botocore option not translated"),
        ({**PLAIN, "client_kwargs": {"verify": "/etc/ca.pem"}}, "a client option not translated"),
        ({"key": "AKID", "secret": "s"}, "AWS itself with no region: s3fs looks the bucket's region up"),
    ],
)
def test_options_obstore_cannot_honour_stay_on_s3fs(options: dict[str, Any], why: str) -> None:
    assert native_s3(options) is None, why


def test_a_private_ca_keeps_https_on_s3fs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/private-ca.pem")
    assert native_s3({**PLAIN, "endpoint_url": "https://s3.internal:443"}) is None
    assert native_s3(PLAIN) is not None  # plain HTTP never looks at a CA


def test_plain_options_keep_s3fs_meaning() -> None:
    native = native_s3(s3_options(PLAIN, Timeouts(connect_s=2.0, read_s=7.0, attempts=4)))
    assert native is not None
    assert native.config == {
        "access_key_id": "AKIDNATIVE",
        "secret_access_key": "native-secret",
        "region": "us-east-1",  # botocore's default for an endpoint that names none
        "endpoint": "http://127.0.0.1:8333",
        "unsigned_payload": False,  # botocore signs the body over plain HTTP
        "checksum_algorithm": "SHA256",  # botocore sends a checksum unless told "when_required"
    }
    assert native.client["allow_http"] is True
    assert native.client["connect_timeout"] == timedelta(seconds=2)
    assert native.client["read_timeout"] == timedelta(seconds=7)
    assert native.retry["max_retries"] == 3  # attempts, not retries


def test_the_sandbox_options_turn_signing_and_checksums_off_on_both_clients() -> None:
    options = {
        **PLAIN,
        "token": "session-token",
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {
            "s3": {"payload_signing_enabled": False, "addressing_style": "virtual"},
            "request_checksum_calculation": "when_required",
        },
    }
    native = native_s3(options)
    assert native is not None
    assert native.config["unsigned_payload"] is True
    assert "checksum_algorithm" not in native.config
    assert native.config["region"] == "eu-west-1"
    assert native.config["session_token"] == "session-token"
    assert native.config["virtual_hosted_style_request"] is True


def test_https_is_unsigned_as_botocore_does_and_anonymous_skips_signing() -> None:
    https = native_s3({**PLAIN, "endpoint_url": "https://s3.example.net"})
    assert https is not None
    assert https.config["unsigned_payload"] is True
    assert https.client["allow_http"] is False
    anonymous = native_s3({"endpoint_url": "http://127.0.0.1:8333", "anon": True})
    assert anonymous is not None
    assert anonymous.config == {
        "skip_signature": True,
        "region": "us-east-1",
        "endpoint": "http://127.0.0.1:8333",
        "unsigned_payload": False,
        "checksum_algorithm": "SHA256",
    }


def test_open_store_wires_the_choice_into_the_backend() -> None:
    fast = open_store("fast", "s3://bucket/p", PLAIN).backend
    slow = open_store("slow", "s3://bucket/p", {**PLAIN, "profile": "dev"}).backend
    assert isinstance(fast, S3Backend)
    assert isinstance(slow, S3Backend)
    assert fast.native is not None
    assert slow.native is None
