"""UI language: Chinese by default, English by the OPSMAP_LANGUAGE setting.

Why keyed by the Chinese text: the Chinese wording is the product's own (it follows the
street offices' terms); English is a rendering of it, so one table beside the code is
enough and a missing entry shows the Chinese rather than nothing. Texts written into the
event feed at ingest time stay as written.
"""

from __future__ import annotations

EN: dict[str, str] = {
    # the names of contract codes (data/domain/labels.py)
    "一般": "Normal", "中": "Medium", "低": "Low", "便利店": "Convenience store", "公园": "Park",
    "关闭出入口扫码": "Scan at a closed gate", "养老机构": "Elderly care", "出": "Out", "创建": "Create",
    "办公楼": "Office building", "升级": "Escalate", "发热": "Fever", "咖啡馆": "Café", "商铺": "Shop",
    "地铁出入口": "Metro entrance", "外省返沪待登记": "Returnee to register", "就医需求": "Medical need",
    "居家观察外出": "Left home observation", "居民": "Resident", "工作人员": "Staff", "工地": "Construction site",
    "已关闭": "Closed", "已到场": "On site", "已办结": "Resolved", "已升级": "Escalated", "已接单": "Accepted",
    "已撤销": "Cancelled", "已派单": "Dispatched", "已登记": "Registered", "延长": "Extend",
    "待派单": "To dispatch", "待登记": "To register", "快递外卖": "Courier", "撤销": "Cancel", "服装": "Clothing",
    "未健康打卡": "Missed health check-in", "派单": "Dispatch", "环境卫生": "Sanitation", "理发": "Barber",
    "生活物资": "Supplies", "红码": "Red code", "结束": "End", "绿码": "Green code", "药店": "Pharmacy",
    "菜场": "Food market", "访客": "Visitor", "超市": "Supermarket", "返沪人员": "Returnee", "进": "In",
    "重办": "Reopened", "餐饮": "Restaurant", "高": "High", "黄/红码": "Yellow/red code",
    "黄码": "Yellow code",
    # the morning briefing (dashboard/briefing.py) and the words of its rows (data/read/report.py)
    "{street} 疫情防控晨报": "{street} — morning briefing", "{street} 晨报 {day}": "{street} briefing {day}",
    "{district} · {day} · 数据截至 {cut}（此后的事件不计入，重新生成结果相同） · 生成于 {made}":
        "{district} · {day} · data up to {cut} (later events do not count: regenerated, it is the same) · made {made}",
    " · 导出人 {who}": " · exported by {who}",
    "一、疫情概况（24小时新增 / 累计）": "1. Cases (new in 24 h / in all)", "二、今日行动事项": "2. Today's actions",
    "三、分居委情况（较前一日）": "3. By committee (against the day before)",
    "四、近7天、14天趋势（阳性感染者，按日）": "4. Last 7 and 14 days (positive cases, by day)",
    "五、街道示意图（截至发布时点）": "5. The street at the cut-off", "六、12345 工单": "6. 12345 work orders",
    "七、小区出入口": "7. Compound gates", "八、居家观察": "8. Home observation", "九、沿街商铺": "9. Street shops",
    "十、近24小时预警": "10. Alerts of the last 24 h",
    "{name}：24小时新增 {new}，累计 {total}": "{name}: {new} new in 24 h, {total} in all", "累计 {n}": "{n} in all",
    "{place}（{date} 官方通报）：确诊新增 {c}，无症状新增 {a}；累计确诊 {ct}，累计无症状 {at}，累计阳性感染者 {pt}":
        "{place} (official, {date}): {c} new confirmed, {a} new asymptomatic; in all {ct} confirmed, "
        "{at} asymptomatic, {pt} positive",
    "封控区 {s}、管控区 {c}、防范区 {p}（小区数）": "sealed {s}, controlled {c}, precaution {p} (compounds)",
    "超时工单 <b>{n}</b> 件（按超时长短）": "<b>{n}</b> overdue orders (latest first)",
    "昨日未健康打卡 <b>{n}</b> 人（名单见第八部分）": "<b>{n}</b> missed yesterday's health check-in (listed in 8)",
    "值守不足的出入口 <b>{n}</b> 个": "<b>{n}</b> understaffed gates",
    "今日、明日分区变化的小区 <b>{n}</b> 个": "<b>{n}</b> compounds whose tier changes today or tomorrow",
    "今日期满解除观察 <b>{n}</b> 人，在观 {m} 人": "<b>{n}</b> observations end today; {m} under observation",
    "{name}（近7天）": "{name} (7 days)", "近7天无病例报告。": "No case reported in the last 7 days.",
    "阳性感染者趋势": "Positive cases by day", "近7天": "7 days", "近14天": "14 days",
    "街道示意图": "Map of the street", "24小时阳性感染者": "positive in 24 h",
    "关闭/值守不足出入口": "closed or understaffed gates",
    "。底图：OpenStreetMap（ODbL）；居委辖区为合成数据。":
        ". Basemap: OpenStreetMap (ODbL); committee areas are synthetic.",
    "24小时新开 {a}，24小时关闭 {b}，在办 {c}，超时 {d}。":
        "{a} opened and {b} closed in 24 h; {c} open, {d} overdue.",
    "在办时间最长的工单：": "Open longest:",
    "关闭 {c}，限制通行 {r}，值守不足 {u}（共列出 {n} 个关闭或值守不足的出入口）。":
        "{c} closed, {r} restricted, {u} understaffed ({n} closed or understaffed gates listed).",
    "在观 {a}，24小时新增 {b}，今日期满 {c}，明日期满 {d}，昨日未打卡 {e}。":
        "{a} under observation, {b} new in 24 h, {c} end today, {d} tomorrow, {e} missed yesterday's check-in.",
    "今日、明日期满：": "Ending today or tomorrow:", "昨日未打卡：": "Missed yesterday's check-in:",
    "关闭 {c}，待核实 {u}，营业 {o}（共 {n} 家；关闭和待核实的商铺名单见汇总表“商铺”）。":
        "{c} closed, {u} unverified, {o} open ({n} shops; the closed and unverified are listed in the workbook).",
    "共 {n} 条。": "{n} in all.", "另有 {n} 条未列出。": "{n} more not listed.", "合计": "Total", "无": "None",
    "人员（脱敏）": "Person (masked)", "电话（脱敏）": "Phone (masked)", "来源地": "From", "期满": "Ends",
    "最近打卡": "Last check-in", "最近核实": "Last confirmed", "工单号": "Order", "已开（小时）": "Open (hours)",
    "在岗/应岗": "Guards/required", "24小时新开": "Opened 24 h", "24小时关闭": "Closed 24 h", "在办": "Open",
    "承办人": "Owner", "生效": "When", "原分区": "Tier before", "新分区": "Tier after", "增减": "Change",
    "阳性（24小时）": "Positive (24 h)", "阳性（前24小时）": "Positive (24 h before)",
    "居家观察在观": "Under observation", "昨日未打卡": "Missed check-in", "返沪登记（14天）": "Returnees (14 days)",
    "在办工单": "Open orders", "明日": "tomorrow", "正常": "on time", "（未分配居委）": "(no committee)",
    "（限本居委）": "(own committee only)", "（未派）": "(not dispatched)", "天": "d", "小时": "h", "分钟": "min",
    "分": "min", "　": "   ",
    # sign-in and access
    "登录": "Sign in", "opsmap 登录": "opsmap sign-in", "账号": "Account", "密码": "Password",
    "统一身份认证登录": "Sign in with single sign-on", "账号或密码不正确": "Wrong account or password",
    "表单已过期，请重新登录": "The form expired: please sign in again",
    "登录失败次数过多，已暂时锁定：请 {n} 分钟后再试": "Too many failed sign-ins: locked, try again in {n} minutes",
    "此链接只能使用一次。": "This link works once.", "链接无效、已使用或已过期": "The link is invalid, used or expired",
    "设置密码": "Set password", "新密码（至少 10 位）": "New password (10 characters or more)",
    "再输入一次": "Again", "两次输入不一致": "The two entries differ", "以后再说": "Later", "无法打开": "Cannot open",
    "将本设备配对为指挥中心大屏。": "Pair this device as the command center's screen.", "配对": "Pair",
    "大屏配对": "Pair a screen", "表单已过期，请重新打开配对链接": "The form expired: open the pairing link again",
    "配对码无效、已使用或已过期": "The pairing code is invalid, used or expired",
    "统一身份认证失败": "Single sign-on failed",
    "统一身份认证成功，但没有 opsmap 角色": "Signed on, but no opsmap role",
    "无权打开此页面": "Your roles do not open this page", "管理": "Admin", "退出": "Sign out",
    "无权操作：该点位不属于您负责的居委": "Not allowed: this point is not in your committees",
    # pages
    "战疫图": "Operations Map", "全部居委": "All committees", "时点 ": "As of ", "实时": "Live",
    "实时（或 2022-04-10 08:00）": "live (or 2022-04-10 08:00)", "回放": "replay", "数据延迟": "Stale data",
    "入库暂停": "Ingest paused",
    "拖动回放过去 14 天": "Drag to replay the last 14 days",
    "无实时数据": "No live data", "全街道": "Whole street", "紧急处置": "Emergency", "紧急": "URGENT",
    "数据新鲜度": "Data freshness",
    "opsmap：尚未加载街道（运行 opsmap load）": "opsmap: no street loaded (run opsmap load)",
    # panels
    "疫情发展": "Cases", "今日新增": "New today", "累计": "Total",
    "今日有阳性感染者的小区 ": "Compounds with positive cases today ", "阳性感染者": "Positive cases",
    "超出目标 {n}：{why}": "{n} above target: {why}", "超额完成": "done beyond the plan",
    "同一人当日多次走访": "some persons visited more than once today",
    "含目标外居民预约": "includes residents outside the target",
    "含目标外居民领取": "includes residents outside the target",
    "封控": "Sealed", "管控": "Controlled", "防范": "Precaution", "重要工作": "Key work", "实时播报": "Live feed",
    "地点": "Place",
    "暂无": "Nothing yet", "无详情": "No details", "确诊": "Confirmed", "疑似": "Suspected", "密接": "Close contact",
    "居家观察": "Home observation", "解除观察": "Released", "无症状": "Asymptomatic", "上海市": "Shanghai",
    "排摸": "Screening", "消毒": "Disinfection", "口罩预约": "Mask booking", "口罩发放": "Mask distribution",
    "重点人员": "Key persons", "封闭管理小区": "Closed compounds", "工地 今日巡查": "Sites checked today",
    "养老机构 今日巡查": "Care homes checked today", "商铺 今日核查": "Shops checked today",
    "户": "households", "只": "masks", "处": "places", "人": "persons", "出入口": "Gates", "开": "open ",
    "关": "closed ", "限": "restricted ", "值守不足": "understaffed", "工单 在办": "Orders open ", "超时": "overdue",
    "今日": "today",
    # layers and their legend
    "图例": "Legend", "选中的小区（蓝圈）": "Chosen compound (blue ring)", "防范区": "Precaution zone",
    "管控区": "Controlled zone", "封控区": "Sealed zone", "观察中（第N/M天）": "Under observation (day N of M)",
    "今日未打卡": "No check-in today", "已解除": "Released", "道路（OSM）": "Roads (OSM)", "水系": "Water",
    "街道边界": "Street boundary", "居委会辖区（合成）": "Committee areas (synthetic)",
    "值守不足（红框）": "Understaffed (red ring)", "状态待确认（虚框）": "Status unconfirmed (dashed)",
    "超时（闪烁）": "Overdue (blinking)", "未核实": "Unverified",
    "底图（道路、水系）": "Basemap (roads, water)", "街道与居委": "Street & committees", "小区": "Compounds",
    "重点场所": "Sites", "沿街商铺": "Shops", "小区出入口": "Gates", "病例与重点人员": "Cases & key persons",
    "12345 工单": "12345 work orders", "实时预警": "Alerts",
    # drill-down fields
    "名称": "Name", "状态": "Status", "在岗人数": "Guards on duty", "应岗人数": "Guards required", "排班": "Roster",
    "最近确认": "Last confirmed", "状态记录": "Status history", "最近扫码": "Recent scans", "预警": "Alerts",
    "地址": "Address", "户数": "Households", "公布地址": "Published addresses", "类别": "Category",
    "未生效（原因）": "Not in force (why)", "再显示 {n} 项（共 {total} 项）": "Show {n} more ({total} in all)",
    "紧急预警 {n} 起": "{n} urgent alerts", "今日新增阳性": "Positive today", "累计阳性感染者": "Positive in all",
    "24小时预警": "Alerts, 24 h", "值守不足出入口": "Understaffed gates",
    "最近事件 {s} 前": "last event {s} ago", "{n} 秒": "{n} s", "{n} 分钟": "{n} min", "{n} 小时": "{n} h",
    "全部": "All", "工单": "Orders", "体温确认无误": "Temperature confirmed",
    "上报人": "Reporter", "方向": "Direction", "电话": "Phone",
    "健康码": "Health code", "事件上报": "Event", "初始数据": "Initial data",
    "紧急程度": "Priority", "居委": "Committee", "处置人": "Assignee", "诉求": "Request", "创建时间": "Created",
    "处置过程": "Timeline", "上报记录": "Reports", "开始": "Start", "计划解除": "Planned end", "第N天": "Day",
    "类型": "Type", "内容": "Message", "时间": "Time", "报告时间": "Reported", "来源": "Source", "级别": "Severity",
    "最近上报": "Last report", "时限": "SLA clocks", "观察对象": "Person", "观察中": "Under observation",
    "今日已打卡": "Checked in today", "计划天数": "Planned days", "节点": "Milestone", "期限": "Deadline",
    "完成时间": "Met at", "分区": "Tier", "分区记录": "Tier history", "病例": "Cases", "日期": "Date",
    "动作": "Action", "新状态": "New state", "体温": "Temperature", "超时分钟": "Minutes overdue", "结束时间": "Ended",
    # officer page and actions
    "网格员 · 今日待办": "Officer · To do", "选择居委": "Choose committee", "我的姓名": "My name",
    "请先选择居委": "Choose a committee first", "暂无待办": "Nothing to do", "未完成": "Not done",
    "超时工单": "Overdue order", "新预警": "New alert", "今日未健康打卡": "No health check-in today",
    "出入口值守不足": "Gate understaffed", "今日观察期满": "Observation ends today", "待办工单": "Open order",
    "接单": "Accept", "到场": "Arrive", "办结": "Resolve", "备注": "Note", "办理结果": "Result",
    "更新出入口": "Update gate", "核实商铺": "Confirm shop", "代为健康打卡": "Record health check-in",
    "体温 °C": "Temperature °C", "症状": "Symptoms", "延长观察": "Extend observation", "延长天数": "Days to add",
    "结束观察": "End observation", "原因": "Reason", "新增居家观察": "Start home observation",
    "身份证号": "ID number", "是": "yes", "否": "no", "开放": "Open", "限制通行": "Restricted", "关闭": "Closed",
    "营业": "Open", "更正前体温": "Corrected from", "更正最近一次打卡": "Correct the latest check-in",
    "该观察对象尚无打卡可更正": "No check-in to correct yet",
    "督办工单 <b>{n}</b> 件（超过时限仍未办结，晨会逐件过）":
        "<b>{n}</b> orders under supervision (past the deadline and still open: each reviewed at the meeting)",
    "催办/督办": "Reminder/supervision", "催办": "Remind", "督办": "Supervised", "已催办": "Reminded",
    "投诉": "Complaint", "咨询": "Enquiry", "办结时限": "Deadline", "督办与催办": "Supervision and reminders",
    "另有 {n} 件": "{n} more", "未派单": "not dispatched", "督办工单": "Order under supervision",
    "出入口长时间无扫码": "Gate silent (no scans)", "当班人员": "On duty", "当班时段": "Shift",
    "剩余时限": "Time left",
    "待核实": "Unverified", "转运就医": "Hospitalised", "转出": "Moved out", "其他": "Other",
}


def tr(text: str, lang: str) -> str:
    """``text`` in the UI language (English when a translation exists)."""
    return EN.get(text, text) if lang == "en" else text
