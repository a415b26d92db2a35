"""rds: the embedded redis-server starts, persists streams across a restart and stops."""

from __future__ import annotations

import os
import time

import pytest
import redis

from data.pipeline.redis_server import EmbeddedRedis
from data.settings import PROJECT_ROOT


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


def test_rds004_a_killed_owners_server_is_adopted_not_duplicated(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    code = ("import sys, time; from pathlib import Path; from data.pipeline.redis_server import EmbeddedRedis; "
            "print(EmbeddedRedis(Path(sys.argv[1])).start(), flush=True); time.sleep(60)")
    owner = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=str(PROJECT_ROOT))
    url = owner.stdout.readline().strip()
    redis.Redis.from_url(url).set("kept", "yes")
    owner.send_signal(signal.SIGKILL)  # the owner dies; its redis-server (own session) lives on
    owner.wait()
    heir = EmbeddedRedis(tmp_path)
    assert heir.start() == url and heir.process is None  # adopted, no second server on the same files
    assert redis.Redis.from_url(url).get("kept") == b"yes"
    pid = json.loads((tmp_path / "server.json").read_text())["pid"]
    heir.stop()
    assert not (tmp_path / "server.json").exists()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_rds003_local_or_embedded_test_server_is_real(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.xadd("opsmap:probe", {"event": "{}"})
    client.xgroup_create("opsmap:probe", "opsmap-ingest", id="0")
    got = client.xreadgroup("opsmap-ingest", "c1", {"opsmap:probe": ">"}, count=10)
    assert len(got[0][1]) == 1
    client.delete("opsmap:probe")
