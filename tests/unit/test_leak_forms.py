"""The secret-leak tests' search finds a secret however it was encoded into a text."""

import base64
import json
from urllib.parse import quote

import pytest

from tests.leaks import encoded_forms, leaks

SECRET = "s3cr3t/+pass=word:with@odd&chars-1234567890"


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"abcd"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_inside_a_longer_blob_is_found_at_any_alignment(prefix, encode):
    blob = encode(prefix + SECRET.encode() + b"-trailer").decode()
    assert leaks({"s": SECRET}, {"blob": blob}), (prefix, blob)


def test_url_encoded_and_json_escaped_forms_are_found():
    assert leaks({"s": SECRET}, {"url": "postgresql://u:" + quote(SECRET, safe="") + "@h/db"})
    assert leaks({"s": 'quote"and\\slash' * 2}, {"json": json.dumps({"x": 'quote"and\\slash' * 2})})


def test_text_without_the_secret_is_clean():
    other = "another-secret-of-the-same-length-123456789"
    texts = {"b64": base64.b64encode(other.encode()).decode(), "plain": other}
    assert leaks({"s": SECRET}, texts) == []
    assert all(len(form) >= 12 for form in encoded_forms(SECRET).values())
