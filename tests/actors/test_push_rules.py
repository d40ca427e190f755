"""Who a new message is pushed to: members, minus the sender, the muted and the silenced."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.model import Member, Message
from actors.rules import push_recipients

NOW = 1_000_000.0


def _member(user_id: str, **changes: Any) -> Member:
    return Member(conversation_id="c", user_id=user_id, role="member", joined_at=0.0, **changes)


def _message(sender: str = "ada", kind: str = "text", **metadata: Any) -> Message:
    return Message(
        conversation_id="c",
        seq=1,
        id="m",
        client_id="x",
        sender_id=sender,
        kind=kind,  # type: ignore[arg-type]
        created_at=NOW,
        metadata=metadata,
    )


def test_everyone_but_the_sender_by_default() -> None:
    members = {u: _member(u) for u in ["ada", "bob", "cy"]}
    assert push_recipients(members, _message("ada"), NOW) == ["bob", "cy"]


def test_muted_and_silenced_members_are_left_out_until_the_mute_ends() -> None:
    members = {
        "ada": _member("ada"),
        "bob": _member("bob", muted_until=NOW + 60),
        "cy": _member("cy", notifications="none"),
        "dee": _member("dee", muted_until=NOW - 1),  # the mute is over
    }
    assert push_recipients(members, _message("ada"), NOW) == ["dee"]
    assert push_recipients(members, _message("ada"), NOW + 61) == ["bob", "dee"]


def test_mentions_only_members_get_the_messages_that_mention_them() -> None:
    members = {"ada": _member("ada"), "bob": _member("bob", notifications="mentions")}
    assert push_recipients(members, _message("ada"), NOW) == []
    assert push_recipients(members, _message("ada", mentions=["bob"]), NOW) == ["bob"]
    assert push_recipients(members, _message("ada", mentions="bob"), NOW) == []  # not a list


def test_system_messages_push_nobody() -> None:
    members = {u: _member(u) for u in ["ada", "bob"]}
    assert push_recipients(members, _message("system", kind="system"), NOW) == []


@given(
    st.dictionaries(
        st.sampled_from(["ada", "bob", "cy", "dee", "eve"]),
        st.tuples(
            st.sampled_from(["all", "mentions", "none"]),
            st.none() | st.floats(NOW - 100, NOW + 100),
        ),
    ),
    st.sampled_from(["ada", "bob", "zed"]),
    st.lists(st.sampled_from(["ada", "bob", "cy", "dee", "eve"])),
)
def test_recipients_are_members_who_asked_for_it(
    settings: dict[str, tuple[str, float | None]], sender: str, mentions: list[str]
) -> None:
    members = {
        u: _member(u, notifications=n, muted_until=m)  # type: ignore[arg-type]
        for u, (n, m) in settings.items()
    }
    recipients = push_recipients(members, _message(sender, mentions=mentions), NOW)
    assert sender not in recipients
    for user_id in recipients:
        member = members[user_id]
        assert member.notifications != "none"
        assert member.muted_until is None or member.muted_until <= NOW
        assert member.notifications == "all" or user_id in mentions
    wanted = [
        u
        for u, m in members.items()
        if u != sender
        and m.notifications != "none"
        and (m.muted_until is None or m.muted_until <= NOW)
        and (m.notifications == "all" or u in mentions)
    ]
    assert recipients == wanted
