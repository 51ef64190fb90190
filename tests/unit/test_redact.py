"""The one redaction rule: registered secret values and credential-shaped text never survive ``redact``."""

from __future__ import annotations

import pytest

from stratus.errors import StorageError
from stratus.redact import display_url, redact, register_options, register_url, secrets_in_options


def test_registered_option_values_are_hidden_wherever_a_vendor_repeats_them() -> None:
    register_options(
        {
            "token": "ya29.unit-planted-gcs-token",
            "client_kwargs": {"aws_secret_access_key": "unit-planted-nested"},
            "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=unitPlantedKey==;",
        }
    )
    text = (
        "ValueError: Bearer ya29.unit-planted-gcs-token refused; secret unit-planted-nested; "
        "key unitPlantedKey== in 'unitPlantedKey=='"
    )
    out = redact(text)
    for secret in ("ya29.unit-planted-gcs-token", "unit-planted-nested", "unitPlantedKey=="):
        assert secret not in out
    assert out.startswith("ValueError: Bearer *** refused; secret ***;")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://user:p4ss-word@bucket/x failed", "s3://user:***@bucket/x failed"),
        (
            "GET https://oauth2.googleapis.com/tokeninfo?access_token=ya29.abc&x=1",
            "GET https://oauth2.googleapis.com/tokeninfo?access_token=***&x=1",
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2024&sig=AbC%2Bd",
            "https://acct.blob.core.windows.net/c/b?sv=2024&sig=***",
        ),
        ("?X-Amz-Credential=AKIA/x&X-Amz-Signature=deadbeef", "?X-Amz-Credential=***&X-Amz-Signature=***"),
        ("AccountName=d;AccountKey=c2VjcmV0;BlobEndpoint=x", "AccountName=d;AccountKey=***;BlobEndpoint=x"),
        ("headers: {'Authorization': 'Bearer abc.def'}", "headers: {'Authorization': 'Bearer ***'}"),
        ("http://127.0.0.1:8080/path and a cache key=abc", "http://127.0.0.1:8080/path and a cache key=abc"),
    ],
)
def test_credential_shapes_are_masked_and_nothing_else(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_url_passwords_are_registered_also_in_their_decoded_form() -> None:
    register_url("postgresql://stratus:unit%40planted@db.internal/state")
    assert redact("auth failed for password 'unit@planted'") == "auth failed for password '***'"
    assert display_url("s3://key:unit%40planted@bucket/p") == "s3://key:***@bucket/p"
    assert redact("user stratus, bucket stratus-test") == "user stratus, bucket stratus-test"


def test_method_names_and_short_values_are_not_matched_by_value() -> None:
    assert secrets_in_options({"token": "anon", "key": "stratus"}) == ["anon", "stratus"]
    register_options({"token": "anon", "key": "stratus"})
    assert redact("token anon for bucket stratus-test") == "token anon for bucket stratus-test"


def test_storage_errors_never_render_a_url_password() -> None:
    error = StorageError("connect failed", site="aws", url="s3://AKID:unit-url-secret@bucket/p")
    assert str(error) == "site aws (s3://AKID:***@bucket/p): connect failed"
    assert error.url == "s3://AKID:***@bucket/p"
