"""Task ids and fencing tokens: format, order, uniqueness, and no pool shared across fork."""

import os

from natsfleet.protocols.ids import new_task_id, new_token

_CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_task_ids_are_ulids_sorted_by_time() -> None:
    ids = [new_task_id(now_ms=ms) for ms in (1, 2, 1_700_000_000_000, 2**48 - 1)]
    assert all(len(i) == 26 and set(i) <= _CROCKFORD for i in ids)
    assert ids == sorted(ids)
    assert new_task_id(now_ms=0).startswith("0000000000")


def test_tokens_are_16_hex_digits_and_do_not_repeat() -> None:
    tokens = [new_token() for _ in range(20_000)]  # several refills of the pool
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_a_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    new_token()  # the parent's pool now holds unread bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next token and leave at once
        os.write(write, new_token().encode())
        os._exit(0)
    os.close(write)
    child_token = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_token) == 16
    assert child_token != new_token()
