/* global document, location, fetch */
/**
 * The simulated issuer's 3-D Secure challenge (test mode): each button posts its outcome, then the buyer goes back to
 * the payment's return_url (payforward.js's modal returns to /elements/authenticated).
 */
(function () {
  'use strict';
  var status = document.getElementById('status');
  [
    ['complete', 'succeeded'],
    ['fail', 'failed'],
  ].forEach(function (pair) {
    document.getElementById(pair[0]).addEventListener('click', async function () {
      var response = await fetch(location.pathname + '/complete', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ outcome: pair[1] }),
      });
      var body = await response.json();
      if (body.return_url) {
        location.href = body.return_url;
        return;
      }
      status.textContent = 'Status: ' + (body.status || (body.error && body.error.message));
      document.querySelectorAll('button').forEach(function (button) {
        button.disabled = true;
      });
    });
  });
})();
