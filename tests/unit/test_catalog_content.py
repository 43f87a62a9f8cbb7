"""Register's `content` is YAML or base64-encoded YAML; text that is neither stays as given, for the
YAML check to refuse with a 400 (non-ASCII text once raised out of the base64 decoder: a 500)."""

from __future__ import annotations

import base64

from noetl.server.routes.catalog import decode_content


def test_base64_yaml_is_decoded() -> None:
    yaml_text = "kind: Playbook\nmetadata: {name: x}\n"
    assert decode_content(base64.b64encode(yaml_text.encode()).decode()) == yaml_text


def test_text_that_is_not_base64_stays_as_given() -> None:
    for text in ("\x80", "héllo", "not base64!", "kind: Playbook"):
        assert decode_content(text) == text
