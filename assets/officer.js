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
