"""i18n: Chinese by default, English by OPSMAP_LANGUAGE — every layer title and panel label."""

from __future__ import annotations

import json

import layers
from dashboard import components
from dashboard.i18n import EN, tr
from dashboard.map_page import layer_control
from data.domain import deadlines
from data.read.summary import summary
from data.settings import load
from data.store import session_factory
from tests.conftest import DATASETS


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), ensure_ascii=False, default=lambda c: c.to_plotly_json())


def test_i18n001_every_layer_title_has_an_english_name():
    assert all(layer.title in EN for layer in layers.LAYERS)
    assert layer_control("map", "en").overlays == [EN[layer.title] for layer in layers.LAYERS]
    assert layer_control("map", "zh").overlays == [layer.title for layer in layers.LAYERS]


def test_i18n002_panels_in_english(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        numbers = summary(s, scn["data"].street.id, scn["at"](15), DATASETS, deadlines.of(load(environ={})))
    en = _text(components.cases_panel(numbers, "en")) + _text(components.work_panel(numbers, "en"))
    zh = _text(components.cases_panel(numbers)) + _text(components.work_panel(numbers))
    for word in ("Cases", "New today", "Confirmed", "Key work", "Screening", "Sealed", "households"):
        assert word in en
    assert "疫情发展" in zh and "Cases" not in zh
    assert "疫情发展" not in en and "排摸" not in en


def test_i18n003_setting_is_validated():
    assert load(environ={"OPSMAP_LANGUAGE": "en"}).language == "en"
    assert tr("实时", "en") == "Live" and tr("实时", "zh") == "实时" and tr("未收录", "en") == "未收录"


def test_i18n004_an_officer_reads_a_refusal_in_chinese_with_the_form_s_words():
    """The contract answers producers in English (``field: problem``); the officer's phone says
    the same in Chinese, naming the field as the form does."""
    import re

    from dashboard.components import problem_text

    got = problem_text("reporter: enter your name first; temperature: must be between 30 and 45 (got 50); "
                       "note: longer than 500 characters", "zh", {"reporter": "我的姓名", "temperature": "体温 °C"})
    assert got == "我的姓名：请先填写您的姓名；体温 °C：应在 30 至 45 之间（填写的是 50）；备注：不能超过 500 个字"
    fold = "办结未生效：当时工单已派单（可做：接单）"  # already in words: kept
    assert problem_text(f"action: {fold}") == f"动作：{fold}"
    assert problem_text("gate_id: something new the contract says") == "该项：填写有误，请核对"
    assert problem_text("note: required", "en") == "note: required"
    many = ("observation_id: home observation 12 has hospitalized at ts; "
            "person_id: no home observation is active for this person at ts; ts: more than 10 minutes in the future")
    assert not re.search(r"[A-Za-z]{3,}", problem_text(many, "zh", {"observation_id": "观察", "person_id": "身份证号"}))
