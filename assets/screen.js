/* /screen: urgent alerts interrupt the big screen, but never hide the overview for long.

   Why in the browser: the queue has to outlive every server round trip (a Dash callback in
   flight is dropped when its input changes again, and an afternoon's traffic brought 34
   banners in 30 s, the banner up 98 % of the time). live.js hands over each notice's urgent
   alerts (event "opsmap:urgent", texts already chosen for this reader by the server); here:
   - an alert arriving while the overview has been up at least data-overview-s seconds shows
     at once; later ones wait and are shown together ("紧急预警 12 起") once it has;
   - a banner stays data-min-s seconds, half a second more per further alert in its group,
     at most data-max-s;
   - the camera goes to the newest alert's point and back to the street (or, rotating, to the
     next committee every data-rotate-s seconds) through the store screen-camera, whose server
     callback turns it into a viewport in the tiles' coordinates; the overview is aimed again
     when the map changes size (the headline row drawn above it, "opsmap:resized").
   Text is set as text, never as HTML. */
(function () {
    "use strict";
    if (location.pathname.indexOf("/screen") !== 0) {
        return;  // Dash loads every asset on every page: this one serves the big screen only
    }
    var queue = [];
    var showing = false;
    var starting = true;  // until the first camera is set
    var overviewSince = 0;  // 0: the overview has been up long enough
    var rotation = 0;
    var timer = null;

    function banner() {
        return document.getElementById("screen-banner");
    }

    function seconds(name, fallback) {
        var value = banner() ? parseFloat(banner().getAttribute(name)) : NaN;
        return isNaN(value) ? fallback : value;
    }

    function camera(value) {
        if (window.dash_clientside && window.dash_clientside.set_props) {
            window.dash_clientside.set_props("screen-camera", {data: value});
            return true;
        }
        return false;
    }

    function text(el, className, value) {
        var span = document.createElement("span");
        span.className = className;
        span.textContent = value;
        el.appendChild(span);
    }

    function show(group) {
        var el = banner();
        showing = true;
        el.textContent = "";
        text(el, "banner-tag", el.getAttribute("data-tag") || "紧急");
        if (group.length === 1) {
            text(el, "banner-text", group[0].text);
        } else {
            var places = group.slice(-3).reverse().map(function (a) { return a.text; }).join("；");
            text(el, "banner-text", (el.getAttribute("data-group") || "紧急预警 {n} 起").replace("{n}", group.length)
                 + "：" + places + (group.length > 3 ? " …" : ""));
        }
        el.className = "screen-banner";
        el.setAttribute("data-count", String(group.length));
        var target = group.filter(function (a) { return a.lng !== undefined && a.lng !== null; }).pop();
        camera(target ? {point: [target.lng, target.lat], n: Date.now()} : {street: true, n: Date.now()});
        var stay = Math.min(seconds("data-max-s", 10), seconds("data-min-s", 6) + 0.5 * (group.length - 1));
        clearTimeout(timer);
        timer = setTimeout(end, stay * 1000);
    }

    function end() {
        var el = banner();
        showing = false;
        el.className = "screen-banner hidden";
        el.textContent = "";
        overviewSince = Date.now();
        idle();
        pump();
    }

    function idle() {
        var rotate = seconds("data-rotate-s", 0);
        camera(rotate > 0 ? {rotate: rotation, n: Date.now()} : {street: true, n: Date.now()});
    }

    function pump() {
        if (showing || !queue.length || !banner()) {
            return;
        }
        var wait = overviewSince ? overviewSince + seconds("data-overview-s", 20) * 1000 - Date.now() : 0;
        if (wait > 0) {
            clearTimeout(timer);
            timer = setTimeout(pump, wait);
            return;
        }
        show(queue.splice(0));
    }

    document.addEventListener("opsmap:resized", function () {  // assets/map.js: the map has another size
        if (!showing && !starting) {
            idle();  // the overview fitted again, to the map as it is now
        }
    });

    document.addEventListener("opsmap:urgent", function (e) {
        queue = queue.concat(e.detail || []);
        pump();
    });

    // the whole street once Dash is up (dash-leaflet ignores a map's initial bounds), then rotation
    var start = setInterval(function () {
        if (banner() && camera({street: true, n: Date.now()})) {
            clearInterval(start);
            starting = false;
            var rotate = seconds("data-rotate-s", 0);
            if (rotate > 0) {
                setInterval(function () {
                    if (!showing) {
                        rotation += 1;
                        idle();
                    }
                }, rotate * 1000);
            }
        }
    }, 200);
})();
