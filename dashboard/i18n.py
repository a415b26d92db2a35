"""UI language: Chinese by default, English by the OPSMAP_LANGUAGE setting.

Why keyed by the Chinese text: the Chinese wording is the product's own (it follows the
street offices' terms); English is a rendering of it, so one table beside the code is
enough and a missing entry shows the Chinese rather than nothing. Texts written into the
event feed at ingest time stay as written.
"""

from __future__ import annotations

EN: dict[str, str] = {
    # pages
    "战疫图": "Operations Map", "全部居委": "All committees", "时点 ": "As of ", "实时": "Live",
    "实时（或 2022-04-10 08:00）": "live (or 2022-04-10 08:00)", "回放": "replay", "数据延迟": "Stale data",
    "无实时数据": "No live data", "全街道": "Whole street", "紧急处置": "Emergency", "紧急": "URGENT",
    "数据新鲜度": "Data freshness",
    "opsmap：尚未加载街道（运行 opsmap load）": "opsmap: no street loaded (run opsmap load)",
    # panels
    "疫情发展": "Cases", "今日新增": "New today", "累计": "Total",
    "今日有确诊病例的小区 ": "Compounds with cases today ",
    "封控": "Sealed", "管控": "Controlled", "防范": "Precaution", "重要工作": "Key work", "实时播报": "Live feed",
    "暂无": "Nothing yet", "无详情": "No details", "确诊": "Confirmed", "疑似": "Suspected", "密接": "Close contact",
    "居家观察": "Home observation", "解除观察": "Released", "无症状": "Asymptomatic", "上海市": "Shanghai",
    "排摸": "Screening", "消毒": "Disinfection", "口罩预约": "Mask booking", "口罩发放": "Mask distribution",
    "重点人员": "Key persons", "封闭管理小区": "Closed compounds", "工地 今日巡查": "Sites checked today",
    "养老机构 今日巡查": "Care homes checked today", "商铺 今日核查": "Shops checked today",
    "户": "households", "只": "masks", "处": "places", "人": "persons", "出入口": "Gates", "开": "open ",
    "关": "closed ", "限": "restricted ", "值守不足": "understaffed", "工单 在办": "Orders open ", "超时": "overdue",
    "今日": "today",
    # layers
    "底图（道路、水系）": "Basemap (roads, water)", "街道与居委": "Street & committees", "小区": "Compounds",
    "重点场所": "Sites", "沿街商铺": "Shops", "小区出入口": "Gates", "病例与重点人员": "Cases & key persons",
    "12345 工单": "12345 work orders", "实时预警": "Alerts",
    # drill-down fields
    "名称": "Name", "状态": "Status", "在岗人数": "Guards on duty", "应岗人数": "Guards required", "排班": "Roster",
    "最近确认": "Last confirmed", "状态记录": "Status history", "最近扫码": "Recent scans", "预警": "Alerts",
    "地址": "Address", "户数": "Households", "公布地址": "Published addresses", "类别": "Category",
    "紧急程度": "Priority", "居委": "Committee", "处置人": "Assignee", "诉求": "Request", "创建时间": "Created",
    "处置过程": "Timeline", "上报记录": "Reports", "开始": "Start", "计划解除": "Planned end", "第N天": "Day",
    "类型": "Type", "内容": "Message", "时间": "Time", "报告时间": "Reported", "来源": "Source", "级别": "Severity",
    "最近上报": "Last report",
}


def tr(text: str, lang: str) -> str:
    """``text`` in the UI language (English when a translation exists)."""
    return EN.get(text, text) if lang == "en" else text
