"""The random part of minted tokens (``security.token_entropy``): drawn from the OS in blocks, each
chunk handed out once — in one process, across threads, and across a fork (``--workers`` and the
CLI never fork after minting, but a pool carried into a child would mint its parent's tokens)."""

from __future__ import annotations

import os
import threading

from openplatform import security
from openplatform.security import Keyring, token_entropy


def test_each_chunk_is_32_bytes_and_never_repeats() -> None:
    drawn = [token_entropy() for _ in range(1000)]  # several blocks of the pool
    assert {len(chunk) for chunk in drawn} == {32}
    assert len(set(drawn)) == 1000


def test_threads_never_share_a_chunk() -> None:
    drawn: list[bytes] = []

    def draw() -> None:
        mine = [token_entropy() for _ in range(500)]
        drawn.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(drawn) == len(set(drawn)) == 2000


def test_a_forked_child_does_not_mint_its_parents_next_tokens() -> None:
    token_entropy()  # the pool now holds the rest of a block
    assert security._entropy
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next tokens' randomness, to the parent
        try:
            os.write(write, b"".join(token_entropy() for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write)
    received = b""
    while chunk := os.read(read, 4096):
        received += chunk
    os.close(read)
    os.waitpid(child, 0)
    assert len(received) == 128
    parents = [token_entropy() for _ in range(4)]
    assert not {received[i : i + 32] for i in range(0, 128, 32)} & set(parents)


def test_minted_tokens_differ_and_keep_their_shape() -> None:
    keyring = Keyring(b"k" * 32)
    minted = [keyring.mint() for _ in range(300)]
    assert len({raw for raw, _digest in minted}) == len({digest for _raw, digest in minted}) == 300
    assert {len(raw) for raw, _digest in minted} == {51}  # 6 bytes of time and 32 random, base64url
    assert all(keyring.token_digest(raw) == digest for raw, digest in minted)
