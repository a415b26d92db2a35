/* The panels beside the map and on the big screen, and the officer's list, drawn from plain data
   (dashboard/components.py plain(): text, or [tag, attributes, custom CSS properties, children])
   into their slots.

   Why not as Dash components: Dash applies every answer in time that grows with all the
   components on the page times the new ones the answer brings, and the panels were most of
   them; as data an answer is one prop. A store maps slot ids to their children; a slot is
   drawn again only when its data changed. Text is set as text, never as HTML, and only the
   tags and attributes plain() allows are made (the server refuses others before they get here).
   The officer's forms are drawn the same way: their inputs have no handlers; assets/officer.js
   reads them when an action's button is tapped. */
(function () {
    "use strict";
    const TAGS = new Set(["div", "span", "p", "strong", "h2", "h3", "ul", "li", "table", "thead", "tbody", "tr", "th",
                          "td", "button", "fieldset", "legend", "label", "input"]);
    const ATTRIBUTE = /^(id|class|title|role|colspan|type|name|value|inputmode|maxlength|data-[a-z0-9-]+|aria-[a-z-]+)$/;
    const INPUTS = new Set(["text", "radio", "checkbox"]);  // the officer's forms (components.Control)
    const drawn = new WeakMap();  // slot element → the data it shows (a slot of a page drawn anew starts empty)

    function made(node) {
        if (typeof node === "string") {
            return document.createTextNode(node);
        }
        const [tag, attributes, style, children] = node;
        if (!TAGS.has(tag)) {
            throw new Error("opsmap panels: no <" + tag + "> is drawn");
        }
        if (tag === "input" && !INPUTS.has(attributes.type)) {
            throw new Error("opsmap panels: no input of type " + attributes.type + " is drawn");
        }
        const el = document.createElement(tag);
        Object.keys(attributes).forEach(function (name) {
            if (!ATTRIBUTE.test(name)) {
                throw new Error("opsmap panels: no attribute " + name + " is drawn");
            }
            el.setAttribute(name, attributes[name]);
        });
        Object.keys(style).forEach(function (name) {
            if (name.startsWith("--")) {
                el.style.setProperty(name, style[name]);
            }
        });
        children.forEach(function (child) { el.appendChild(made(child)); });
        return el;
    }

    function draw(slots) {  // {slot id: [node, ...]}
        Object.keys(slots || {}).forEach(function (id) {
            const slot = document.getElementById(id);
            const text = JSON.stringify(slots[id]);
            if (!slot || drawn.get(slot) === text) {
                return;
            }
            try {
                slot.replaceChildren.apply(slot, slots[id].map(made));
                drawn.set(slot, text);
            } catch (err) {
                console.warn(err.message);
            }
        });
    }

    window.dash_clientside = window.dash_clientside || {};
    window.dash_clientside.opsmap = Object.assign({}, window.dash_clientside.opsmap, {
        drawPanels: function () {  // each argument a store of slots
            Array.prototype.forEach.call(arguments, draw);
        }
    });
})();
