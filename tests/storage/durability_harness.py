"""Write through a store until killed, printing every acknowledged write.

Usage: python durability_harness.py STORAGE_URL [CONCURRENCY]

Each line ``<key> <revision>`` is printed and flushed only after the store acknowledged
the write, so whatever the parent read before killing this process must survive.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from kubeling.storage import open_store


async def main(url: str, concurrency: int) -> None:
    store = open_store(url)
    counter = itertools.count()
    out = sys.stdout

    async def writer(worker: int) -> None:
        while True:
            key = f"/registry/durability/w{worker:03d}-{next(counter):08d}"
            kv = await store.create(key, key.encode() * 4)
            out.write(f"{key} {kv.mod_revision}\n")
            out.flush()

    print("ready", flush=True)
    await asyncio.gather(*(writer(i) for i in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16))
