/* global window, document, location, fetch */
/**
 * The hosted checkout page's script (served from the platform's origin, no inline script on the page): the card
 * fields are payforward.js's frame, as on any shop's page; once the payment succeeds the server confirms it and
 * names where to send the buyer.
 */
(function () {
  'use strict';
  var main = document.getElementById('checkout');
  var pay = document.getElementById('pay');
  var message = document.getElementById('message');
  var payforward = window.PayForward(main.dataset.key);
  var card = payforward.mountCard('#card');

  function show(text) {
    message.textContent = text;
    pay.disabled = false;
  }

  pay.addEventListener('click', function () {
    pay.disabled = true;
    message.textContent = '';
    payforward.confirmPayment(main.dataset.clientSecret, { payment_method: card }).then(function (result) {
      if (result.error) return show(result.error.message || 'The payment failed.');
      if (result.payment.status !== 'succeeded') return show('The payment was not completed; try again.');
      return fetch(main.dataset.completeUrl, { method: 'POST', credentials: 'omit' })
        .then(function (response) {
          return response.json();
        })
        .then(function (body) {
          if (body.redirect_url) location.assign(body.redirect_url);
          else show((body.error && body.error.message) || 'The payment could not be recorded.');
        });
    });
  });
})();
