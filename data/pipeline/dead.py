"""Dead letters (``opsmap:dead``): list them, and feed them back after a fix (``opsmap dead``).

Why replay is safe: a parked event was never stored (the ledger has no row for it), so sent
again it is applied once; a dead letter is removed in the same atomic step that re-appends it,
so two replays never send it twice (in a Redis Cluster, where the two keys live apart, it is
appended first and removed after: a crash between leaves a copy that the ledger then recognises
as a duplicate). Dead letters hold events sealed (personal numbers as hash and mask only), so
the replayed event is the same person's without any raw number passing through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from data.pipeline import streams
from data.pipeline.events import DEAD, STREAMS

#: re-append the event and remove its dead letter, only if the letter was still there
_REPLAY = """if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[2], '*', 'event', ARGV[2], 'sealed', '1')
end
return false"""


@dataclass(frozen=True)
class Letter:
    id: str  # the dead letter's own entry id in opsmap:dead
    stream: str  # the stream it came from, without the prefix
    entry_id: str
    reason: str
    event: str  # sealed JSON, or {"unparsed": …} when it was not JSON
    parked_at: float

    @property
    def replayable(self) -> bool:
        """An event that was an object (a letter of unreadable bytes cannot be sent again)."""
        try:
            doc = json.loads(self.event)
        except ValueError:
            return False
        return isinstance(doc, dict) and "unparsed" not in doc and self.stream in STREAMS


def iter_dead(client: streams.Client) -> Iterator[dict[str, str]]:
    """The dead letters' fields as stored (``stream``, ``entry_id``, ``reason``, ``event``, ``parked_at``)
    and their own id (``id``), oldest first."""
    for eid, fields in client.xrange(DEAD):
        yield {"id": eid.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}


def letters(client: streams.Client, reason: str | None = None, stream: str | None = None) -> Iterator[Letter]:
    """Dead letters, oldest first; ``reason``: those whose reason contains it; ``stream``: of that stream."""
    for f in iter_dead(client):
        letter = Letter(f["id"], f.get("stream", "").removeprefix("opsmap:"), f.get("entry_id", ""),
                        f.get("reason", ""), f.get("event", ""), float(f.get("parked_at", 0)))
        if (reason is None or reason in letter.reason) and (stream is None or letter.stream == stream):
            yield letter


def replay(client: streams.Client, reason: str | None = None, stream: str | None = None) -> tuple[int, int]:
    """Send the matching dead letters back to their streams; returns (sent, left as unreadable)."""
    sent = skipped = 0
    for letter in letters(client, reason, stream):
        if not letter.replayable:
            skipped += 1
            continue
        key = streams.stream_key(letter.stream)
        if streams.is_cluster(client):
            client.xadd(key, {"event": letter.event, "sealed": "1"})
            client.xdel(DEAD, letter.id)
            sent += 1
        else:
            sent += client.eval(_REPLAY, 2, DEAD, key, letter.id, letter.event) is not None
    return sent, skipped
