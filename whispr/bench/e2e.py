"""End-to-end benchmark: what envelopes and key bundles cost, on PostgreSQL.

``plain_send_msgs_per_s``   plain sends (60 bytes of content) through ``Messaging.send``
``e2e_send_msgs_per_s``     end-to-end sends of the same load: no content, one 200-byte
                            envelope per device of the members (9: five members with two
                            devices each, the sending device left out), each checked against
                            the members' devices and stored before the message
``bundle_fetch_per_s``      ``get_bundles`` of a user with two devices, many at once, each
                            claiming one one-time prekey per device

Load shape. 50 groups of 5 members, one sender per group sending its next message once the
last is acknowledged (durable); the bundle fetches go to 50 users with 2 devices and 100
one-time prekeys each, 20 fetches per user, all at once. Runs against
``WHISPR_BENCH_DATABASE_URL`` (default: the local test database), in a schema of its own
that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.conversation import ConversationDeps, Draft
from actors.e2e.directory import KeyDirectory
from actors.e2e.model import Envelope, KeyUpload, OneTimePreKey, SignedPreKey
from actors.e2e.signatures import signed_prekey_message
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from supervisors import ChildSpec, DynamicSupervisor, Ref, Registry
from supervisors.batching import Batcher
from whispr.bench.report import machine, markdown_table, write_json, write_text
from whispr.broker import MemoryBroker
from whispr.store.postgres import PostgresStore

__all__ = ["run_suite"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
GROUPS = 50
MEMBERS = 5
DEVICES = 2
CIPHERTEXT = b"c" * 200


async def _no_contacts(_user_id: str, _limit: int) -> list[str]:
    return []


async def _stack(store: PostgresStore) -> tuple[Messaging, KeyDirectory, Ref[Any]]:
    supervisor = DynamicSupervisor.start(max_restarts=1000, max_seconds=1.0)
    await supervisor.started()
    broker = MemoryBroker()
    deps = ConversationDeps(
        store=store,
        broker=broker,
        commit=Batcher[Message, InsertResult](
            store.insert_messages, max_batch=1000, max_in_flight=2
        ),
    )

    async def start_child(spec: ChildSpec) -> Ref[Any]:
        ref: Ref[Any] = await supervisor.proxy().start_child(spec)
        return ref

    directory = KeyDirectory(store, broker, _no_contacts, time.time)
    messaging = Messaging(deps, registry=Registry(), start_child=start_child, e2e=directory)
    return messaging, directory, supervisor


async def _sends(
    messaging: Messaging, directory: KeyDirectory, per_sender: int
) -> tuple[float, float]:
    """Plain and end-to-end sends per second, the same groups and senders."""
    run = uuid.uuid4().hex[:6]
    groups: list[tuple[str, list[Envelope]]] = []
    for n in range(GROUPS):
        users = [f"u{run}-{n}-{m}" for m in range(MEMBERS)]
        for user in users:
            for d in range(DEVICES):
                await directory.register_device(user, f"d{d}", 7, "")
        group = await messaging.create_group(users[0], f"bench {n}", users[1:])
        envelopes = [
            Envelope(
                user_id=u,
                device_id=f"d{d}",
                registration_id=7,
                type="message",
                ciphertext=CIPHERTEXT,
            )
            for u in users
            for d in range(DEVICES)
            if (u, d) != (users[0], 0)
        ]
        groups.append((group.id, envelopes))

    async def sender(conversation_id: str, envelopes: list[Envelope], e2e: bool) -> None:
        user = envelopes[0].user_id  # the sender's own second device comes first
        for n in range(per_sender):
            if e2e:
                draft = Draft(client_id=f"e{n}", metadata={"e2e": True}, envelopes=tuple(envelopes))
                await messaging.send(user, conversation_id, draft, device_id="d0")
            else:
                draft = Draft(client_id=f"p{n}", content="x" * 60)
                await messaging.send(user, conversation_id, draft)

    rates = []
    for e2e in (False, True):
        began = time.perf_counter()
        await asyncio.gather(*(sender(c, e, e2e) for c, e in groups))
        rates.append(GROUPS * per_sender / (time.perf_counter() - began))
    return rates[0], rates[1]


async def _bundle_fetches(directory: KeyDirectory, per_user: int) -> float:
    """``get_bundles`` per second, many at once."""
    run = uuid.uuid4().hex[:6]
    identity = Ed25519PrivateKey.generate()
    identity_key = identity.public_key().public_bytes_raw()
    prekey = b"p" * 32
    upload = KeyUpload(
        identity_key=identity_key,
        signed_prekey=SignedPreKey(
            key_id=1, public_key=prekey, signature=identity.sign(signed_prekey_message(prekey))
        ),
        one_time_prekeys=tuple(
            OneTimePreKey(key_id=k, public_key=k.to_bytes(32, "big")) for k in range(100)
        ),
    )
    users = [f"b{run}-{n}" for n in range(GROUPS)]
    for user in users:
        for d in range(DEVICES):
            await directory.register_device(user, f"d{d}", 7, "")
            await directory.upload_keys(user, f"d{d}", upload)
    began = time.perf_counter()
    await asyncio.gather(*(directory.get_bundles(u) for u in users for _ in range(per_user)))
    return len(users) * per_user / (time.perf_counter() - began)


async def _measure(url: str, quick: bool) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, server_settings={"search_path": schema}, max_size=10)
    try:
        await store.open()
        await store.migrate()
        messaging, directory, supervisor = await _stack(store)
        per_sender = 10 if quick else 40
        plain, e2e = await _sends(messaging, directory, per_sender)
        fetches = await _bundle_fetches(directory, 20)
        supervisor.stop(block=False)
        await supervisor.wait_exit()
        return {
            "plain_send_msgs_per_s": plain,
            "e2e_send_msgs_per_s": e2e,
            "bundle_fetch_per_s": fetches,
            "envelopes_per_message": MEMBERS * DEVICES - 1,
            "messages": GROUPS * per_sender,
        }
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure and write e2e.json and e2e.md."""
    import uvloop

    url = os.environ.get("WHISPR_BENCH_DATABASE_URL", DEFAULT_URL)
    figures = uvloop.run(_measure(url, quick))
    report = {**figures, "machine": machine()}
    write_json(out / "e2e.json", report)
    rows = [
        [name, figures[name]]
        for name in ("plain_send_msgs_per_s", "e2e_send_msgs_per_s", "bundle_fetch_per_s")
    ]
    text = (
        "# End to end: envelope sends and bundle fetches on PostgreSQL\n\n"
        f"{GROUPS} groups of {MEMBERS} members with {DEVICES} devices each, one sender per "
        f"group; {figures['messages']:,} messages per kind, "
        f"{figures['envelopes_per_message']} envelopes of {len(CIPHERTEXT)} bytes per "
        "end-to-end message.\n\n"
        + markdown_table(["figure", "value"], rows)
        + "\nReproduce: `make bench BENCH_ARGS=e2e`.\n"
    )
    write_text(out / "e2e.md", text)
    print(text, flush=True)
    return report
