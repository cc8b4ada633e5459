"""High-water marks per signing key: what a device checks a new desired document against.

A device refuses a document older than the newest one it accepted (`stale-generation`,
`docs/protocol.md` §4.1). It remembers that newest document *per signing key* (`key_id` ->
generation and content hash), and only the marks of keys it still pins form the floor. So a
thief who signs generation 2**62 with a stolen key raises only that key's mark: once the
operator unpins the key, documents signed with a trusted key are judged against that key's
own mark again, and replays of a trusted key's older documents stay refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linefleet_core.signing import TrustedKeys
from linefleet_core.wire import Applied

Marks = Mapping[str, Applied]


def signer(document: Mapping[str, Any]) -> str | None:
    """The `key_id` that signed a (verified) document, or None when it names none."""
    signature = document.get("signature")
    found = signature.get("key_id") if isinstance(signature, Mapping) else None
    return found if isinstance(found, str) else None


def marked(marks: Marks, key: str, accepted: Applied) -> dict[str, Applied]:
    """`marks` with `accepted` as `key`'s mark, unless that key's mark is already newer."""
    held = marks.get(key)
    if held is not None and held.generation > accepted.generation:
        return dict(marks)
    return {**marks, key: accepted}


def floor(marks: Marks, trusted_keys: TrustedKeys) -> Applied | None:
    """The newest mark of a key still pinned: the `held` state `signing.verify` checks against.

    None when no pinned key has a mark (a fresh device, or every mark belongs to keys that
    were unpinned): the next correctly signed document is accepted whatever its generation.
    """
    live = [(mark.generation, key) for key, mark in marks.items() if key in trusted_keys]
    return marks[max(live)[1]] if live else None
