/* /officer: a tapped item's detail opens where the officer looks. The detail is drawn above the
   list; an item tapped far down the list left it off-screen (issue 15), so when the detail
   changes it is scrolled into view, below the sticky header (scroll-margin-top in the CSS). */
(function () {
    "use strict";
    if (location.pathname.indexOf("/officer") !== 0) {
        return;  // Dash loads every asset on every page
    }
    var shown = null;

    function check() {
        var detail = document.querySelector("#officer-detail .officer-detail");
        if (detail && detail !== shown) {
            shown = detail;
            detail.scrollIntoView({block: "start"});
        } else if (!detail) {
            shown = null;
        }
    }

    new MutationObserver(check).observe(document.documentElement, {childList: true, subtree: true});
})();

/* /officer: the browser's own notifications while the page is open. The page asks for
   permission once; then a work order that newly appears on the committee's list (a dispatch),
   or one that turns 超时 or 督办, is announced — the phone may be in a pocket. */
(function () {
    "use strict";
    if (location.pathname.indexOf("/officer") !== 0 || !("Notification" in window)) {
        return;
    }
    if (Notification.permission === "default") {
        Notification.requestPermission();
    }
    var RANK = {"reason-order": 0, "reason-overdue": 1, "reason-supervised": 2};
    var seen = null;  // order id → rank, from the first list drawn (what was there is not news)

    function orders() {
        var found = {};
        document.querySelectorAll("#officer-list .officer-item").forEach(function (button) {
            var id;
            try { id = JSON.parse(button.id); } catch (e) { return; }
            if (id.layer !== "workorders") { return; }
            var rank = 0;
            Object.keys(RANK).forEach(function (k) { if (button.classList.contains(k)) { rank = RANK[k]; } });
            found[id.id] = {rank: rank, title: button.querySelector(".officer-title").textContent,
                            note: button.querySelector(".officer-note").textContent,
                            reason: button.querySelector(".officer-reason").textContent};
        });
        return found;
    }

    function check() {
        var now = orders();
        if (!Object.keys(now).length) { return; }
        if (seen !== null && !Object.keys(now).some(function (id) { return id in seen; })) {
            seen = null;  // another committee's list: nothing in it is news
        }
        if (seen !== null && Notification.permission === "granted") {
            Object.keys(now).forEach(function (id) {
                if (!(id in seen) || now[id].rank > seen[id]) {
                    new Notification(now[id].reason + "：" + now[id].title, {body: now[id].note, tag: id});
                }
            });
        }
        seen = seen || {};
        Object.keys(now).forEach(function (id) { seen[id] = Math.max(now[id].rank, seen[id] || 0); });
    }

    new MutationObserver(check).observe(document.documentElement, {childList: true, subtree: true});
})();
