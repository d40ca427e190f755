"""The channel kinds' event tables and payload structs, without a socket."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from whispr.gateway.channels import CHANNELS, TOPIC_PREFIXES
from whispr.gateway.channels.base import decode_payload
from whispr.gateway.channels.conversation import SendMessage
from whispr.gateway.channels.user import CreateConversation

#: Every client event of the WebSocket API, by topic kind (docs/protocol.md lists the same).
DOCUMENTED = {
    "conversation": {
        "send_message",
        "edit_message",
        "delete_message",
        "react",
        "pin",
        "mark_read",
        "mark_delivered",
        "typing_start",
        "typing_stop",
        "history",
        # A member's own state (whispr/gateway/channels/member_state.py).
        "update_member_settings",
        "get_member_state",
        "get_receipts",
        "list_pins",
        "list_thread",
        # group administration (whispr/gateway/channels/admin.py)
        "add_members",
        "remove_member",
        "leave",
        "set_role",
        "update_conversation",
        "transfer_ownership",
        "list_members",
        # full-text search (whispr/gateway/channels/search.py)
        "search",
        # scheduled and disappearing messages (whispr/gateway/channels/scheduled.py)
        "schedule_message",
        "list_scheduled",
        "update_scheduled",
        "cancel_scheduled",
        "set_disappearing",
    },
    "user": {
        "create_conversation",
        "list_conversations",
        "update_presence",
        "search",
        # the end-to-end key directory (whispr/gateway/channels/keys.py)
        "register_device",
        "list_devices",
        "remove_device",
        "upload_keys",
        "get_bundles",
    },
    "notification": set(),
}


def test_each_topic_kind_is_one_class_with_its_events() -> None:
    assert TOPIC_PREFIXES == ("user:", "conversation:", "notification:")
    assert {kind: set(cls.table.events) for kind, cls in CHANNELS.items()} == DOCUMENTED


def test_send_message_is_the_actors_draft() -> None:
    draft = decode_payload(SendMessage, {"client_id": "c1", "content": "hi"})
    assert isinstance(draft, Draft)
    assert (draft.kind, draft.content, draft.attachments) == ("text", "hi", ())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_id": "c", "kind": "system"}, "kind"),  # only the server posts system messages
        ({"client_id": "c", "sender_id": "someone-else"}, "sender_id"),  # unknown: refused
        ({"content": "no client id"}, "client_id"),
        ({"client_id": 7}, "client_id"),
        ({"client_id": "c", "reply_to": "1"}, "reply_to"),
        ({"client_id": "c", "attachments": [{"id": "a"}]}, "attachments"),
    ],
)
def test_a_send_that_does_not_fit_is_refused_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(WhisprError) as refused:
        decode_payload(SendMessage, payload)
    assert refused.value.reason is Reason.INVALID
    assert field in refused.value.message
    assert refused.value.details["field"] == field


def test_a_refused_value_quoted_in_the_message_can_be_sent_back() -> None:
    # msgspec quotes a literal it refuses; one holding a lone surrogate made a reply that could
    # not be encoded, and the channel crashed instead of answering.
    with pytest.raises(WhisprError) as refused:
        decode_payload(CreateConversation, {"kind": "\ud800"})
    assert refused.value.details["field"] == "kind"
    refused.value.message.encode("utf-8")  # does not raise


def test_a_binary_payload_is_refused() -> None:
    with pytest.raises(WhisprError, match="JSON payload"):
        decode_payload(SendMessage, b"\x00\x01")


@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=8)))
def test_any_payload_decodes_or_is_refused_as_invalid(payload: dict[str, Any]) -> None:
    reasons = []
    for cls in CHANNELS.values():
        for payload_type, _handler in cls.table.events.values():
            try:
                decode_payload(payload_type, payload)
            except WhisprError as exc:  # anything else escapes and fails the test
                reasons.append(exc.reason)
    assert set(reasons) <= {Reason.INVALID}
