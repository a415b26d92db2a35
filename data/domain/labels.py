"""The names of the event contract's codes, in the street office's words (Chinese: the product's
own language; dashboard/i18n.py renders them in English). Feed texts, drill-downs, the officer's
list and the briefing name a code through ``label``, so no raw code reaches a person.

Why one flat table with a few per-field overrides: the contract's vocabularies hardly collide
(``closed`` is a gate's 关闭 but an order's 已关闭), so a value is named the same wherever it
shows, and a new code needs one line here."""

from __future__ import annotations

from data.domain.rules import allowed_actions
from data.pipeline.events import ALERT_LABELS, CASE_LABELS

ORDER_STATES = {"created": "待派单", "dispatched": "已派单", "accepted": "已接单", "arrived": "已到场",
                "resolved": "已办结", "closed": "已关闭", "reopened": "重办", "escalated": "已升级",
                "cancelled": "已撤销"}
CODES: dict[str, str] = {
    **ORDER_STATES, **CASE_LABELS, **ALERT_LABELS,
    # work orders: categories, actions (and SLA milestones), priorities
    "medical_need": "就医需求", "supplies": "生活物资", "gate": "出入口", "shop": "商铺", "sanitation": "环境卫生",
    "other": "其他", "create": "创建", "dispatch": "派单", "accept": "接单", "arrive": "到场", "resolve": "办结",
    "close": "关闭", "reopen": "重办", "escalate": "升级", "cancel": "撤销", "urgent": "紧急", "normal": "一般",
    "enquiry": "咨询", "complaint": "投诉", "remind": "催办", "supervise": "督办", "reminded": "已催办",
    "supervised": "督办", "deadline": "办结时限",
    # facilities, scans, severities
    "open": "开放", "closed": "关闭", "restricted": "限制通行", "unverified": "待核实", "in": "进", "out": "出",
    "resident": "居民", "returnee": "返沪人员", "visitor": "访客", "courier": "快递外卖", "staff": "工作人员",
    "green": "绿码", "yellow": "黄码", "red": "红码", "high": "高", "medium": "中", "low": "低",
    "required": "待登记", "registered": "已登记",
    # observations
    "extend": "延长", "end": "结束", "hospitalized": "转运就医", "moved_out": "转出", "active": "观察中",
    # places: shop and site kinds, tiers
    "cafe": "咖啡馆", "convenience": "便利店", "pharmacy": "药店", "restaurant": "餐饮", "supermarket": "超市",
    "barber": "理发", "clothing": "服装", "construction_site": "工地", "elderly_care": "养老机构",
    "office_building": "办公楼", "market": "菜场", "metro_entrance": "地铁出入口", "park": "公园",
    "sealed": "封控", "controlled": "管控", "precaution": "防范",
    # work tasks
    "screening": "排摸", "disinfection": "消毒", "mask_reservation": "口罩预约", "mask_distribution": "口罩发放",
    "key_person_visit": "重点人员",
}
#: fields whose values mean something else than the flat table says
BY_FIELD: dict[str, dict[str, str]] = {"state": ORDER_STATES, "to_state": ORDER_STATES,
                                       "source": {"event": "事件上报", "load": "初始数据"}}
#: drill-down fields that hold codes (others — names, addresses, notes — are shown as they are)
CODED = frozenset({"category", "kind", "status", "state", "to_state", "action", "priority", "severity", "direction",
                   "health_code", "end_reason", "tier", "from_tier", "to_tier", "milestone", "source", "level"})


def label(code: str, field: str = "") -> str:
    """The name of ``code`` (as the value of ``field``); an unknown code is shown as it is."""
    return BY_FIELD.get(field, {}).get(code) or CODES.get(code, code)


def refusal(action: str, state: str) -> str:
    """Why a work-order step does not count where it stands in time, for a person to read."""
    now = "尚未创建" if state == "none" else label(state, "state")
    possible = "、".join(label(a) for a in allowed_actions(None if state == "none" else state)) or "无"
    return f"{label(action)}未生效：当时工单{now}（可做：{possible}）"
