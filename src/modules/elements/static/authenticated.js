/* global window, location, URL, URLSearchParams */
/**
 * Where 3-D Secure returns to, inside payforward.js's modal frame: tells the page that framed it (and only that
 * origin) that authentication is over, so it can read the payment's outcome.
 */
(function () {
  'use strict';
  var origin = new URLSearchParams(location.search).get('origin') || '';
  var parsed;
  try {
    parsed = new URL(origin);
  } catch {
    return;
  }
  if (parsed.origin !== origin || window.parent === window) return;
  window.parent.postMessage({ type: 'payforward:authenticated' }, origin);
})();
