"""Log following across reconnects with the timestamps a real kubelet writes.

The kubelet stamps lines in Go's RFC3339Nano, which trims trailing zeros ("…05.1Z", "…05.12Z", "…06Z"), so stamps
cannot be compared as text. The follower is driven here by a scripted log endpoint (the ``stream_lines`` interface
of ``flyte._k8s.client.Kube``): each connection answers from ``sinceTime``, cut to whole seconds as the real API
server does, so a reconnect re-sends lines already shown, which the follower must skip without dropping new ones."""

from __future__ import annotations

import asyncio

import pytest

from flyte._k8s.logs import LogFollower, stamp_key

pytestmark = pytest.mark.k8s

# One second holding fractions of every length, then whole and next seconds. Chronological order.
STAMPED = [
    ("2026-11-22T01:02:05Z", "a"),
    ("2026-11-22T01:02:05.1Z", "b"),
    ("2026-11-22T01:02:05.12Z", "c"),
    ("2026-11-22T01:02:05.12Z", "c twin"),
    ("2026-11-22T01:02:05.2Z", "d"),
    ("2026-11-22T01:02:05.999999999Z", "e"),
    ("2026-11-22T01:02:06Z", "f"),
    ("2026-11-22T01:02:06.05Z", "g"),
]


def test_stamps_order_by_time_not_by_text():
    keys = [stamp_key(stamp) for stamp, _ in STAMPED]
    assert keys == sorted(keys)
    assert stamp_key("2026-11-22T01:02:05.1Z") == stamp_key("2026-11-22T01:02:05.100000000Z")
    assert stamp_key("2026-11-22T01:02:05.1Z") < stamp_key("2026-11-22T01:02:05.12Z")  # as text: the other way


class ScriptedLogEndpoint:
    """Serves ``STAMPED`` from ``sinceTime`` (whole seconds), cutting each of the first connections after
    ``cut_after`` lines, as a dropped connection does."""

    def __init__(self, cut_after: list[int]) -> None:
        self._cuts = list(cut_after)
        self.queries: list[dict] = []

    async def stream_lines(self, path, query, *, idle_timeout):
        self.queries.append(dict(query))
        since = query.get("sinceTime")
        lines = [(s, t) for s, t in STAMPED if since is None or stamp_key(s)[0] >= since.rstrip("Z")]
        cut = self._cuts.pop(0) if self._cuts else None
        for index, (stamp, text) in enumerate(lines):
            if cut is not None and index == cut:
                raise ConnectionError("stream dropped")
            yield f"{stamp} {text}\n".encode()
            await asyncio.sleep(0)


@pytest.mark.parametrize("cut_after", [[2], [3], [4, 1], [6, 1, 1]], ids=str)
def test_reconnects_neither_repeat_nor_lose_lines(cut_after):
    endpoint = ScriptedLogEndpoint(cut_after)
    shown: list[str] = []

    async def follow() -> None:
        follower = LogFollower(endpoint, "ns", "pod", "main", shown.append,  # type: ignore[arg-type]
                               container_done=lambda: len(endpoint.queries) > len(cut_after))
        follower.start()
        await follower.stop(drain_s=10)

    asyncio.run(follow())
    assert shown == [text for _, text in STAMPED]
