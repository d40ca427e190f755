"""A second node for the multi-node test: sends to one conversation, prints the seqs it got.

Usage: python -m tests.actors._node_process DB_URL SCHEMA REDIS_URL PREFIX CONVERSATION USER COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from tests.actors.conftest import build_stack
from whispr.broker import RedisBroker
from whispr.store.postgres import PostgresStore


async def main(argv: list[str]) -> None:
    db_url, schema, redis_url, prefix, conversation_id, user, count = argv
    store = PostgresStore(db_url, server_settings={"search_path": schema})
    broker = RedisBroker(redis_url, node_id=f"process-{user}", prefix=prefix)
    await store.open()
    await broker.open()
    stack = await build_stack(store, broker)  # type: ignore[arg-type]
    seqs = []
    for n in range(int(count)):
        draft = Draft(client_id=f"{user}-{n}", content=f"{user}-{n}")
        for _attempt in range(50):  # as a client does: retry with the same client id
            try:
                message = await stack.messaging.send(user, conversation_id, draft)
                break
            except WhisprError as exc:
                if exc.reason is not Reason.UNAVAILABLE:
                    raise
        else:
            raise SystemExit(f"{user}-{n} was never acknowledged")
        seqs.append(message.seq)
    await broker.flush()
    stack.supervisor.stop(block=False)
    await stack.supervisor.wait_exit()
    await broker.close()
    await store.close()
    print(json.dumps(seqs), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
