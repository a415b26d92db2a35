"""set001: one settings table, documented, with command line > environment > default."""

from __future__ import annotations

import argparse
import re

import pytest

from data import settings


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def test_set001_every_setting_is_in_the_readme_table():
    readme = (settings.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M))
    declared = {s.env for s in settings.SETTINGS}
    assert declared - documented == set(), "settings missing from README's table"
    assert documented - declared == set(), "README documents settings that do not exist"


@pytest.mark.parametrize("s", settings.SETTINGS, ids=lambda s: s.env)
def test_set002_readme_shows_each_default(s):
    readme = (settings.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{s.env}` |"))
    assert f"`{s.default}`" in row or (s.default == "" and "(empty)" in row)


def test_set003_precedence_cli_over_env_over_default():
    env = {"OPSMAP_HTTP_PORT": "9000", "OPSMAP_STREET": "外滩"}
    assert settings.load(_parse([]), environ={}).http_port == 8050
    assert settings.load(_parse([]), environ=env).http_port == 9000
    cfg = settings.load(_parse(["--http-port", "9100"]), environ=env)
    assert cfg.http_port == 9100
    assert cfg.street == "外滩"


def test_set004_bad_value_names_the_setting():
    with pytest.raises(SystemExit, match="OPSMAP_HTTP_PORT"):
        settings.load(_parse(["--http-port", "eighty"]), environ={})
    for outside in ("0.5", "16", "many"):  # a keep-alive past the stream's socket timeout would cut it
        with pytest.raises(SystemExit, match="OPSMAP_STREAM_KEEPALIVE_S"):
            settings.load(environ={"OPSMAP_STREAM_KEEPALIVE_S": outside})
    assert settings.load(environ={"OPSMAP_STREAM_KEEPALIVE_S": "2.5"}).stream_keepalive_s == 2.5


def test_set005_database_url_defaults_to_sqlite_in_var_and_names_psycopg():
    cfg = settings.load(_parse(["--var-dir", "/srv/opsmap"]), environ={})
    assert cfg.sqlalchemy_url == "sqlite:////srv/opsmap/opsmap.db"
    cfg = settings.load(_parse([]), environ={"DATABASE_URL": "postgresql://u@h/db"})
    assert cfg.sqlalchemy_url == "postgresql+psycopg://u@h/db"
