"""Mentions: the members a message names, in ``metadata.mentions``.

The server sets ``metadata["mentions"]`` of every member's message when it is sent: the
members named as ``@<user_id>`` in its content, then those the client listed itself in
``metadata.mentions`` (the only way for content the server cannot read, encrypted end to end
with ``metadata.e2e``), members only, without the sender, each once, in order of appearance.
A name that is not a member's is dropped, so a mention never reaches outside the conversation.
An empty result leaves the key out.

The list drives two things: pushes to members whose notification level is ``mentions``
(:func:`actors.rules.push_recipients`) and the per-conversation mention count of a user's
unread state (``Store.mention_counts``), which falls as the read cursor passes the messages.
A mention is fixed when the message is sent: editing the content does not change it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MENTION", "mention_metadata", "mentioned"]

#: ``@`` not preceded by a word character (so ``bob@example.com`` is not one), then the user id
#: up to a space or punctuation that ids do not end with.
MENTION: Final = re.compile(r"(?<!\w)@([^\s@,;!?()\[\]{}<>\"'`]+)")
_TRAILING: Final = ".:-"


def mentioned(content: str, given: object, members: Mapping[str, Any], sender_id: str) -> list[str]:
    """The members a message mentions (see the module's docstring)."""
    found: dict[str, None] = {}
    if "@" in content:
        for match in MENTION.finditer(content):
            name = match.group(1)
            for candidate in (name, name.rstrip(_TRAILING)):
                if candidate in members:
                    found[candidate] = None
                    break
    if isinstance(given, list | tuple):
        for name in given:
            if isinstance(name, str) and name in members:
                found[name] = None
    found.pop(sender_id, None)
    return list(found)


def mention_metadata(
    content: str, metadata: Mapping[str, Any], members: Mapping[str, Any], sender_id: str
) -> dict[str, Any] | None:
    """A draft's metadata with the server's ``mentions``, or None when it stays as it is.

    Content encrypted end to end (``metadata.e2e``) is not parsed: only the client's list is
    kept, filtered to members.
    """
    given = metadata.get("mentions")
    if given is None and "@" not in content:
        return None  # the common case: nothing to parse, nothing to filter
    names = mentioned("" if metadata.get("e2e") else content, given, members, sender_id)
    if names == given:
        return None
    updated = {k: v for k, v in metadata.items() if k != "mentions"}
    if names:
        updated["mentions"] = names
    return updated
