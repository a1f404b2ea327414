"""Finding a secret in text in any form it is commonly written in: as is, base64 (standard and URL
alphabet, at any of the three alignments inside a longer base64 text), URL-encoded, JSON-escaped.

The secret-leak tests search state, exports, CLI output and the lab's logs for each form.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def encoded_forms(secret: str) -> dict[str, str]:
    """Form name -> a text that appears wherever the secret was written in that form."""
    raw = secret.encode()
    forms = {"plaintext": secret, "JSON-escaped": json.dumps(secret)[1:-1]}
    forms["URL-encoded"] = quote(secret, safe="")
    forms["URL-encoded (form)"] = quote_plus(secret, safe="")
    for alphabet, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for offset in range(3):
            # Encode behind `offset` filler bytes; keep only the characters that depend on the secret
            # alone: from the first full 3-byte group after the filler to the last full group.
            text = encode(b"\0" * offset + raw).decode()
            start = 0 if offset == 0 else 4
            usable = (len(raw) - (3 - offset) % 3) // 3 * 4
            forms[f"{alphabet} (offset {offset})"] = text[start : start + usable]
    return {name: form for name, form in forms.items() if len(form) >= 12}


def leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    """'<secret> as <form> in <place>' for every form of every secret found in a place's text."""
    found = []
    for what, secret in secrets.items():
        for form_name, form in encoded_forms(secret).items():
            found += [f"{what} as {form_name} in {place}" for place, text in places.items() if form in text]
    return found
