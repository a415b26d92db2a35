"""piib: links that carry markup in any query parameter run nothing in a signed-in officer's browser."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import BROWSER

pytestmark = BROWSER
PAYLOADS = ("<svg onload=window.__pwned=1>", "\"><img src=x onerror=window.__pwned=1>",
            "</script><script>window.__pwned=1</script>", "javascript:window.__pwned=1")
PARAMS = ("street", "as_of", "date", "cutoff", "committee", "base", "v", "n", "since", "next", "actor", "action")
ROUTES = ("/", "/screen", "/officer", "/briefing", "/briefing.pdf", "/briefing.xlsx", "/admin", "/signin",
          "/signin/password", "/api/v1/summary", "/api/v1/layers/gates", "/api/v1/layers/observations",
          "/api/v1/entities/gates/{p}", "/api/v1/feed", "/healthz", "/no/such/{p}")


def test_piib001_markup_in_every_parameter_of_every_route_executes_nothing(app_url, browser, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tried = 0
    for payload in PAYLOADS:
        query = "&".join(f"{name}={quote(payload)}" for name in PARAMS)
        for route in ROUTES:
            url = f"{app_url}{route.format(p=quote(payload, safe=''))}?{query}"
            try:
                page.goto(url, wait_until="load", timeout=15_000)
            except Exception as exc:  # noqa: BLE001 - a download (PDF, workbook) is not a page
                assert "Download is starting" in str(exc), f"{route}: {exc}"
                continue
            tried += 1
            page.wait_for_timeout(150)  # an onload/onerror would have run by now
            assert page.evaluate("window.__pwned") is None, f"{route} ran the payload {payload!r}"
    assert dialogs == [] and tried >= len(PAYLOADS) * (len(ROUTES) - 2)
    page.screenshot(path=str(artifacts / "reflected-html.png"))
