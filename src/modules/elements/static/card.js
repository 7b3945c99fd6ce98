/* global window, document, location, URL, URLSearchParams, fetch */
/**
 * The card frame of payforward.js, on the platform's origin. It alone sees the card fields. It answers requests
 * only from the page that framed it (the origin named in its URL, checked against the browser's own record of
 * its ancestors), and posts its answers only to that origin. The card goes to the platform's API with the
 * publishable key; the parent page gets the `pm_…`, brand and last4, never a digit more.
 */
(function () {
  'use strict';
  var PREFIX = 'payforward:';
  var params = new URLSearchParams(location.search);
  var key = params.get('key') || '';
  var parentOrigin = params.get('origin') || '';
  var status = document.getElementById('status');

  function fail(message) {
    status.textContent = message;
    throw new Error(message);
  }

  var parsed;
  try {
    parsed = new URL(parentOrigin);
  } catch {
    fail('payforward.js: the page origin is missing.');
  }
  if (parsed.origin !== parentOrigin) fail('payforward.js: the page origin is malformed.');
  if (window.parent === window) fail('payforward.js: this page works only inside a checkout page.');
  var ancestors = location.ancestorOrigins;
  if (ancestors && ancestors.length && ancestors[0] !== parentOrigin)
    fail('payforward.js: this frame belongs to another page.');

  var number = document.getElementById('number');
  var expiry = document.getElementById('expiry');
  var cvc = document.getElementById('cvc');

  function digits(value) {
    return value.replace(/\D/g, '');
  }

  function luhn(pan) {
    var sum = 0;
    for (var i = 0; i < pan.length; i++) {
      var d = Number(pan[pan.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return pan.length >= 12 && pan.length <= 19 && sum % 10 === 0;
  }

  function brand(pan) {
    if (/^4/.test(pan)) return 'visa';
    if (/^(5[1-5]|2[2-7])/.test(pan)) return 'mastercard';
    if (/^3[47]/.test(pan)) return 'amex';
    return 'unknown';
  }

  function readCard() {
    var pan = digits(number.value);
    var exp = digits(expiry.value);
    var month = Number(exp.slice(0, 2));
    var year = Number(exp.slice(2));
    if (!luhn(pan))
      return { error: { type: 'validation_error', code: 'incorrect_number', message: 'Your card number is invalid.' } };
    if (exp.length !== 4 && exp.length !== 6)
      return {
        error: { type: 'validation_error', code: 'invalid_expiry', message: 'Your card’s expiry date is incomplete.' },
      };
    if (month < 1 || month > 12)
      return {
        error: {
          type: 'validation_error',
          code: 'invalid_expiry_month',
          message: 'Your card’s expiry month is invalid.',
        },
      };
    if (year < 100) year += 2000;
    var code = digits(cvc.value);
    if (code.length < 3)
      return {
        error: {
          type: 'validation_error',
          code: 'incomplete_cvc',
          message: 'Your card’s security code is incomplete.',
        },
      };
    return { card: { number: pan, exp_month: month, exp_year: year, cvc: code } };
  }

  function post(message) {
    window.parent.postMessage(message, parentOrigin);
  }

  function changed() {
    var pan = digits(number.value);
    var result = readCard();
    post({ type: PREFIX + 'change', complete: !result.error, brand: pan.length >= 1 ? brand(pan) : null });
  }
  [number, expiry, cvc].forEach(function (input) {
    input.addEventListener('input', changed);
  });

  function api(method, path, body) {
    return fetch(path, {
      method: method,
      headers: Object.assign({ authorization: 'Bearer ' + key }, body ? { 'content-type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
      credentials: 'omit',
      cache: 'no-store',
    }).then(
      function (response) {
        return response.json().then(function (json) {
          return response.ok
            ? { ok: json }
            : { error: json.error || { type: 'api_error', message: 'Request failed.' } };
        });
      },
      function () {
        return { error: { type: 'api_connection_error', message: 'Could not reach the payment platform.' } };
      },
    );
  }

  function tokenize() {
    var read = readCard();
    if (read.error) return Promise.resolve(read);
    return api('POST', '/v1/payment_methods', { type: 'card', card: read.card }).then(function (answer) {
      return answer.error ? { error: answer.error } : { paymentMethod: answer.ok };
    });
  }

  function paymentId(clientSecret) {
    var id = String(clientSecret).split('_secret_')[0];
    return /^pay_[a-z0-9]+$/.test(id) ? id : null;
  }

  function confirm(request) {
    var id = paymentId(request.clientSecret);
    if (!id) return Promise.resolve({ error: { type: 'validation_error', message: 'Invalid client_secret.' } });
    var method = request.useCard
      ? tokenize()
      : Promise.resolve({ paymentMethod: { id: String(request.paymentMethod) } });
    return method.then(function (tokenized) {
      if (tokenized.error) return tokenized;
      var returnUrl =
        location.origin +
        '/elements/authenticated?origin=' +
        encodeURIComponent(parentOrigin) +
        (key.indexOf('pk_test_') === 0 ? '&test=1' : '');
      return api('POST', '/v1/payments/' + id + '/confirm', {
        client_secret: request.clientSecret,
        payment_method: tokenized.paymentMethod.id,
        return_url: returnUrl,
      }).then(function (answer) {
        if (!answer.error) return { payment: answer.ok };
        var error = answer.error;
        var payment = error.payment;
        delete error.payment;
        return payment ? { error: error, payment: payment } : { error: error };
      });
    });
  }

  function retrieve(request) {
    var id = paymentId(request.clientSecret);
    if (!id) return Promise.resolve({ error: { type: 'validation_error', message: 'Invalid client_secret.' } });
    return api('GET', '/v1/payments/' + id + '?client_secret=' + encodeURIComponent(request.clientSecret)).then(
      function (answer) {
        return answer.error ? { error: answer.error } : { payment: answer.ok };
      },
    );
  }

  var methods = { tokenize: tokenize, confirm: confirm, retrieve: retrieve };

  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || event.origin !== parentOrigin) return;
    var data = event.data;
    if (!data || data.type !== PREFIX + 'request' || !Object.prototype.hasOwnProperty.call(methods, data.method))
      return;
    methods[data.method](data.params || {}).then(function (result) {
      post({ type: PREFIX + 'response', id: data.id, result: result });
    });
  });

  post({ type: PREFIX + 'ready' });
})();
