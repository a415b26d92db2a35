"""rds: the embedded redis-server starts, persists streams across a restart and stops."""

from __future__ import annotations

import redis

from data.redis_server import EmbeddedRedis


def test_rds001_streams_survive_a_restart(tmp_path):
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    client = redis.Redis.from_url(url)
    ids = [client.xadd("opsmap:test", {"event": f'{{"n": {i}}}'}) for i in range(100)]
    assert client.info("persistence")["aof_enabled"] == 1
    pid = server.process.pid
    server.stop()
    assert server.process is None and not (tmp_path / "server.json").exists()

    again = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(again.start())
    try:
        assert again.process.pid != pid
        entries = client.xrange("opsmap:test")
        assert [e[0] for e in entries] == ids
    finally:
        again.stop()


def test_rds002_a_second_process_joins_the_running_server(tmp_path):
    owner = EmbeddedRedis(tmp_path)
    url = owner.start()
    guest = EmbeddedRedis(tmp_path)
    try:
        assert guest.start() == url
        assert guest.process is None
        guest.stop()  # a guest never stops the owner's server
        assert redis.Redis.from_url(url).ping()
    finally:
        owner.stop()


def test_rds003_local_or_embedded_test_server_is_real(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.xadd("opsmap:probe", {"event": "{}"})
    client.xgroup_create("opsmap:probe", "opsmap-ingest", id="0")
    got = client.xreadgroup("opsmap-ingest", "c1", {"opsmap:probe": ">"}, count=10)
    assert len(got[0][1]) == 1
    client.delete("opsmap:probe")
