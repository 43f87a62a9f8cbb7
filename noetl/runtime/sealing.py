"""Step results that hold a secret, kept for the runs that rebuild an execution from its log.

The log stores every event redacted: a result that holds a secret value (a `secrets` step's
`value`, an http response that echoes a token) reads ``***`` there. A process that rebuilds the
execution from the log — another worker of the distributed runtime, `noetl resume` — would run the
next steps with ``***``. So an event whose result (or meta: what a step set in ``ctx``, a
pipeline's task results) redaction changed also carries them as they were, encrypted with the
credential key (``meta.sealed_result``: the same key and cipher as stored
credentials), and state rebuilt from the log reads that copy. Where it cannot be decrypted (a
process with another key) the redacted result is what the step gets, as before.

The ciphertext is the only form in which such a result is stored; events, status documents and the
API show the redacted one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from noetl.engine.events import Event

if TYPE_CHECKING:
    from noetl.engine.commands import Command
    from noetl.secrets import Redactor

SEALED_RESULT = "sealed_result"

log = logging.getLogger(__name__)


def seal(result: Any, meta: dict[str, Any] | None) -> str | None:
    """The ciphertext of an event's ``result`` and ``meta`` before redaction (each given only when
    redaction changed it; None when neither did). Meta holds what a step set (``ctx``, task
    results, pipeline names), which state rebuilt from the log needs as much as the result."""
    if result is None and meta is None:
        return None
    from noetl.credential_keys import encrypt

    sealed = {"result": result, **({"meta": meta} if meta is not None else {})}
    return encrypt(sealed, process_salt=True).decode("ascii")


def unsealed(event: Event, learner: Redactor | None = None) -> Event:
    """``event`` as its step produced it: with the result before redaction where the log has it.

    ``learner``, the redactor of the process that reads it on, learns the values the log hid: the
    step that found the secret (a `secrets` step) does not run again here to tell it, and a later
    step's result that holds the secret would be stored in plain text."""
    sealed = event.meta.get(SEALED_RESULT) if event.meta else None
    if not isinstance(sealed, str):
        return event
    from noetl.credential_keys import decrypt
    from noetl.errors import StoreError

    try:
        opened = decrypt(sealed.encode("ascii"), f"result of {event.node_name}").data
    except (StoreError, UnicodeEncodeError, ValueError):
        log.warning("execution %s: the result of %s holds a secret sealed with another key; "
                    "the steps after it read it redacted", event.execution_id, event.node_name)
        return event
    copy = event.own_copy()
    if opened.get("result") is not None or "meta" not in opened:
        copy.result = opened.get("result")
    if isinstance(opened.get("meta"), dict):
        copy.meta = {**opened["meta"], SEALED_RESULT: sealed}
    if learner is not None:
        learner.add(*hidden_values(copy.result, event.result), *hidden_values(copy.meta, event.meta))
    return copy


# The fields of a queued command that hold rendered values (a loop item, a step's input, an arc's).
_COMMAND_FIELDS = ("local", "args", "arc_input")


def seal_commands(commands: list[Command], redactor: Redactor) -> None:
    """Queue commands whose rendered fields hold a secret redacted, with those fields sealed (the
    queue table is as readable as the log: `noetl query`); :func:`unsealed_payload` reads them back."""
    if not redactor:
        return
    for command in commands:
        fields = {name: getattr(command, name) for name in _COMMAND_FIELDS}
        if not redactor.finds_secret(fields):  # most commands: a search is cheaper than a copy
            continue
        # Imported only here, as in seal(): loading the cipher (cryptography's compiled extension)
        # took 7 ms of CPU and 30-40 ms of wall time, paid by a worker's first decision while every
        # execution waiting behind it waited, though most processes never seal anything.
        from noetl.credential_keys import encrypt

        redacted = redactor.redact(fields)  # differs: finds_secret says what redact would change
        command.sealed = encrypt(fields, process_salt=True).decode("ascii")
        for name in _COMMAND_FIELDS:
            setattr(command, name, redacted[name])


def unsealed_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A queued command's payload with its sealed fields as rendered (the payload itself where
    nothing is sealed, or where this process's key cannot open it: it then runs redacted)."""
    sealed = payload.get("sealed")
    if not isinstance(sealed, str):
        return payload
    from noetl.credential_keys import decrypt
    from noetl.errors import StoreError

    try:
        fields = decrypt(sealed.encode("ascii"), "a queued command").data
    except (StoreError, UnicodeEncodeError, ValueError):
        log.warning("a queued command's input holds a secret sealed with another key; it runs with it redacted")
        return payload
    opened = {key: value for key, value in payload.items() if key != "sealed"}
    opened.update({name: fields.get(name) or {} for name in _COMMAND_FIELDS})
    return opened


def unsealed_log(events: list[Event]) -> tuple[list[Event], frozenset[str]]:
    """``events`` as their steps produced them, and the values their redaction hid.

    A rerun reuses the original's results and payload: it gets the results themselves, and its
    redactor learns the hidden values, so its own log stores them redacted as the original's did
    (a reused `secrets` step does not run again to tell it)."""
    from noetl.secrets import Redactor

    learner = Redactor()
    return [unsealed(event, learner) for event in events], learner.secrets


def hidden_values(original: Any, redacted: Any) -> list[str]:
    """The secret values inside ``original`` that its redaction ``redacted`` replaced; where the two
    differ in shape (a redacted key), every string leaf of that part."""
    from noetl.secrets import secret_strings

    if isinstance(original, str):
        return [] if original == redacted else _replaced(original, redacted)
    if isinstance(original, dict) and isinstance(redacted, dict):
        return [text for key, value in original.items()
                for text in (hidden_values(value, redacted[key]) if key in redacted else secret_strings(value))]
    if isinstance(original, list) and isinstance(redacted, list) and len(original) == len(redacted):
        return [text for item, done in zip(original, redacted, strict=True) for text in hidden_values(item, done)]
    return [] if original == redacted else list(secret_strings(original))


def _replaced(original: str, redacted: Any) -> list[str]:
    """What ``***`` stands for in ``redacted``, the redaction of ``original`` ("http://***:8080/v1"
    of "http://db-host:8080/v1": "db-host"), so that a redactor learns the secret rather than the
    whole text around it; the whole of ``original`` where that cannot be told for sure."""
    from noetl.secrets import REDACTED, Redactor

    parts = redacted.split(REDACTED) if isinstance(redacted, str) else []
    if len(parts) < 2 or not original.startswith(parts[0]) or not original.endswith(parts[-1]):
        return [original]
    found, position = [], len(parts[0])
    for index, part in enumerate(parts[1:], start=1):
        end = len(original) - len(part) if index == len(parts) - 1 else original.find(part, position + 1)
        if end <= position or not part and index < len(parts) - 1:
            return [original]
        found.append(original[position:end])
        position = end + len(part)
    return found if Redactor(found).redact(original) == redacted else [original]
