/* /officer: a tap on a line of the list selects its point; a tap on an action's button sends its
   form. The list and the detail, forms included, are drawn from plain data (assets/panels.js),
   not as Dash components. Each line names its point in data-layer and data-id, and the store
   officer-selected gets it — whose callback shows the point's detail and actions, asking the
   server whether this person may see and act on it. A form's inputs name their field in
   data-field; the store officer-submit gets {action, values, n}, whose callback checks the
   person, the point and every value again (dashboard/officer_page.py act). */
(function () {
    "use strict";
    if (location.pathname.indexOf("/officer") !== 0) {
        return;
    }
    var sent = 0;  // a count, so the same form sent twice is two submissions

    function values(form) {  // field → text; a confirmation (checkbox) → ["yes"] or []
        var out = {};
        form.querySelectorAll("input[data-field]").forEach(function (input) {
            var name = input.getAttribute("data-field");
            if (input.type === "checkbox") {
                out[name] = input.checked ? [input.value] : [];
            } else if (input.type === "radio") {
                if (input.checked) { out[name] = input.value; }
            } else {
                out[name] = input.value;
            }
        });
        return out;
    }

    document.addEventListener("click", function (e) {
        var set = window.dash_clientside && window.dash_clientside.set_props;
        var line = e.target.closest && e.target.closest("#officer-list button[data-layer]");
        var button = e.target.closest && e.target.closest("#officer-detail .officer-action .officer-button");
        if (!set) {
            return;
        }
        if (line) {
            set("officer-selected", {data: {layer: line.getAttribute("data-layer"), id: line.getAttribute("data-id")}});
        } else if (button) {
            var form = button.closest(".officer-action");
            sent += 1;
            set("officer-submit", {data: {action: form.getAttribute("data-action"), values: values(form), n: sent}});
        }
    });
})();

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
   or one that turns 超时 or 督办, is announced — the phone may be in a pocket. The page lists
   every order of the list (not only the page shown) in #officer-orders: {id: [rank, reason,
   title, note]}. */
(function () {
    "use strict";
    if (location.pathname.indexOf("/officer") !== 0 || !("Notification" in window)) {
        return;
    }
    if (Notification.permission === "default") {
        Notification.requestPermission();
    }
    var seen = null;  // order id → rank, from the first list drawn (what was there is not news)
    var text = null;

    function check() {
        var holder = document.getElementById("officer-orders");
        if (!holder || holder.textContent === text) { return; }
        text = holder.textContent;
        var now;
        try { now = JSON.parse(text || "{}"); } catch (e) { return; }
        var ids = Object.keys(now);
        if (!ids.length) { return; }
        if (seen !== null && !ids.some(function (id) { return id in seen; })) {
            seen = null;  // another committee's list: nothing in it is news
        }
        if (seen !== null && Notification.permission === "granted") {
            ids.forEach(function (id) {
                if (!(id in seen) || now[id][0] > seen[id]) {
                    new Notification(now[id][1] + "：" + now[id][2], {body: now[id][3], tag: id});
                }
            });
        }
        seen = seen || {};
        ids.forEach(function (id) { seen[id] = Math.max(now[id][0], seen[id] || 0); });
    }

    new MutationObserver(check).observe(document.documentElement, {childList: true, subtree: true,
                                                                   characterData: true});
})();
