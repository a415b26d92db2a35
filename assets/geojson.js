/* The read API's GeoJSON answers, for the page (assets/layers.js) and for the cluster worker
   (assets/worker/clusters.js), which loads this file too: fetching an answer with its version
   (the X-Opsmap-Version header), and applying an answer to a patch request to the layer held. */
(function (scope) {
    "use strict";

    function fetchAnswer(url, options, read) {  // read: "json", or "arrayBuffer" for the bytes unparsed
        return fetch(url, options).then(function (response) {
            if (!response.ok) {
                throw new Error(url + ": HTTP " + response.status);
            }
            return response[read || "json"]().then(function (body) {
                return {body: body, version: response.headers.get("X-Opsmap-Version")};
            });
        });
    }

    function merge(fc, patch) {
        var gone = new Set(patch.remove.map(String));
        var fresh = new Map(patch.upsert.map(function (f) { return [String(f.id), f]; }));
        var features = [];
        fc.features.forEach(function (f) {
            var id = String(f.id);
            if (gone.has(id)) {
                return;
            }
            features.push(fresh.has(id) ? fresh.get(id) : f);
            fresh.delete(id);
        });
        fresh.forEach(function (f) { features.push(f); });
        return {type: "FeatureCollection", features: features};
    }

    // A layer at ``version`` after an answer to its patch request (got = {body, version}):
    // {fc, version, changed}. A whole layer (the server no longer knew the version) replaces
    // it; a patch from another version is an error; an empty patch moves only the version.
    function applied(fc, version, got) {
        var body = got.body;
        if (body.type !== "Patch") {
            return {fc: body, version: got.version, changed: true};
        }
        if (body.base !== version) {
            throw new Error("patch from " + body.base + ", not " + version);
        }
        var changed = body.upsert.length > 0 || body.remove.length > 0;
        return {fc: changed ? merge(fc, body) : fc, version: body.version, changed: changed};
    }

    scope.opsmapGeo = {fetchAnswer: fetchAnswer, applied: applied};
})(self);
