/* global window, document, location, URL, setTimeout, clearTimeout */
/**
 * payforward.js: collect a card on your page without the card number ever touching your page or your server.
 *
 *   <div id="card"></div>
 *   <script src="https://api.payforward.example/js/payforward.js"></script>
 *   const payforward = PayForward('pk_test_…');
 *   const card = payforward.mountCard('#card');
 *   const { payment, error } = await payforward.confirmPayment(clientSecret, { payment_method: card });
 *
 * The card fields live in an iframe served by the platform's own origin; that frame sends the card straight to the
 * platform with the publishable key and hands this page only the resulting `pm_…`. Messages between the page and the
 * frames are checked both ways: this script accepts them only from the platform's origin and from its own frames,
 * and the frames post only to the origin of the page that framed them. 3-D Secure opens in a modal frame, again on
 * the platform's origin.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.src) throw new Error('payforward.js must be loaded with a <script src> tag.');
  var PLATFORM = new URL(script.src).origin;
  var PREFIX = 'payforward:';
  var KEY_FORMAT = /^pk_(test|live)_[A-Za-z0-9_-]{16,128}$/;
  var CLIENT_SECRET_FORMAT = /^pay_[a-z0-9]+_secret_[A-Za-z0-9_-]+$/;

  function Frame(payforward, visible) {
    var iframe = document.createElement('iframe');
    var url = new URL('/elements/card', PLATFORM);
    url.searchParams.set('key', payforward.key);
    url.searchParams.set('origin', location.origin);
    iframe.src = url.href;
    iframe.title = 'Secure card payment input';
    iframe.setAttribute('frameborder', '0');
    iframe.setAttribute('scrolling', 'no');
    iframe.style.cssText = visible
      ? 'border:0;width:100%;height:48px;display:block;overflow:hidden;'
      : 'border:0;width:0;height:0;position:absolute;visibility:hidden;';
    this.iframe = iframe;
    this.listeners = {};
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  Frame.prototype.on = function (event, listener) {
    (this.listeners[event] = this.listeners[event] || []).push(listener);
    return this;
  };

  Frame.prototype.emit = function (event, detail) {
    (this.listeners[event] || []).forEach(function (listener) {
      listener(detail);
    });
  };

  /**
   * `options.loadTimeout`: milliseconds to wait for a frame to load before a call resolves with an error (default
   * 20 s); a frame that never loads is usually one the page may not frame (an http page with a live key).
   */
  function PayForward(publishableKey, options) {
    if (!(this instanceof PayForward)) return new PayForward(publishableKey, options);
    if (typeof publishableKey !== 'string' || !KEY_FORMAT.test(publishableKey))
      throw new Error('PayForward(key): pass your publishable key (pk_test_… or pk_live_…), never a secret key.');
    this.key = publishableKey;
    this.loadTimeout = (options && options.loadTimeout) || 20000;
    this.frames = [];
    this.card = null;
    this.controller = null;
    this.calls = new Map();
    this.sequence = 0;
    this.authentication = null;
    window.addEventListener('message', this.receive.bind(this));
  }

  PayForward.prototype.receive = function (event) {
    if (event.origin !== PLATFORM) return;
    var data = event.data;
    if (!data || typeof data.type !== 'string' || data.type.indexOf(PREFIX) !== 0) return;
    var type = data.type.slice(PREFIX.length);
    if (this.authentication && event.source === this.authentication.frame.contentWindow) {
      if (type === 'authenticated') this.authentication.done();
      return;
    }
    var frame = this.frames.filter(function (f) {
      return f.iframe.contentWindow === event.source;
    })[0];
    if (!frame) return;
    if (type === 'ready') frame.markReady();
    else if (type === 'change')
      frame.emit('change', { complete: !!data.complete, brand: data.brand, error: data.error });
    else if (type === 'response' && this.calls.has(data.id)) {
      var call = this.calls.get(data.id);
      this.calls.delete(data.id);
      call(data.result);
    }
  };

  PayForward.prototype.attach = function (frame, container) {
    this.frames.push(frame);
    container.appendChild(frame.iframe);
    return frame;
  };

  /** Mounts the card fields (number, expiry, CVC) into `target`, an element or a selector. */
  PayForward.prototype.mountCard = function (target) {
    var container = typeof target === 'string' ? document.querySelector(target) : target;
    if (!container) throw new Error('mountCard: no element matches ' + target);
    if (this.card) throw new Error('mountCard: a card is already mounted.');
    var card = this.attach(new Frame(this, true), container);
    card.destroy = () => {
      card.iframe.remove();
      this.frames = this.frames.filter((f) => f !== card);
      this.card = null;
    };
    this.card = card;
    return card;
  };

  /** The frame that talks to the API: the card's, or a hidden one when no card is mounted. */
  PayForward.prototype.apiFrame = function () {
    if (this.card) return this.card;
    if (!this.controller) this.controller = this.attach(new Frame(this, false), document.body);
    return this.controller;
  };

  PayForward.prototype.call = function (frame, method, params) {
    var id = ++this.sequence;
    var loaded = new Promise((resolve) => {
      var timer = setTimeout(() => resolve(false), this.loadTimeout);
      frame.ready.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    return loaded.then((ready) => {
      if (!ready)
        return {
          error: {
            type: 'api_connection_error',
            message:
              'The secure card frame of ' +
              PLATFORM +
              ' did not load: this page may frame it only over https (or from localhost with a test key).',
          },
        };
      return new Promise((resolve) => {
        this.calls.set(id, resolve);
        frame.iframe.contentWindow.postMessage(
          { type: PREFIX + 'request', id: id, method: method, params: params },
          PLATFORM,
        );
      });
    });
  };

  /** Tokenizes the mounted card: resolves `{ paymentMethod }` (a `pm_…` with brand and last4) or `{ error }`. */
  PayForward.prototype.createPaymentMethod = function (card) {
    var frame = card || this.card;
    if (!frame) return Promise.resolve({ error: { type: 'validation_error', message: 'No card is mounted.' } });
    return this.call(frame, 'tokenize', {});
  };

  /**
   * Confirms the payment whose `client_secret` your server handed over, with `payment_method` (a `pm_…`, or the
   * mounted card, the default). Handles 3-D Secure in a modal and resolves `{ payment }` with its final status, or
   * `{ error, payment }`.
   */
  PayForward.prototype.confirmPayment = function (clientSecret, options) {
    if (typeof clientSecret !== 'string' || !CLIENT_SECRET_FORMAT.test(clientSecret))
      return Promise.resolve({ error: { type: 'validation_error', message: 'Pass the payment’s client_secret.' } });
    var method = options && options.payment_method;
    var params = { clientSecret: clientSecret };
    var frame;
    if (typeof method === 'string') {
      params.paymentMethod = method;
      frame = this.apiFrame();
    } else {
      frame = method || this.card;
      if (!frame) return Promise.resolve({ error: { type: 'validation_error', message: 'No card is mounted.' } });
      params.useCard = true;
    }
    return this.call(frame, 'confirm', params).then((result) => {
      var payment = result.payment;
      if (result.error || !payment || payment.status !== 'requires_action') return result;
      var next = payment.next_action && payment.next_action.redirect_to_url;
      if (!next) return result;
      return this.authenticate(next.url).then(() => this.call(frame, 'retrieve', { clientSecret: clientSecret }));
    });
  };

  /** Reads the payment back (limited fields): `{ payment }` or `{ error }`. */
  PayForward.prototype.retrievePayment = function (clientSecret) {
    return this.call(this.apiFrame(), 'retrieve', { clientSecret: clientSecret });
  };

  /** Shows the issuer's 3-D Secure page in a modal frame; resolves when it returns to the platform's origin. */
  PayForward.prototype.authenticate = function (url) {
    return new Promise((resolve) => {
      var overlay = document.createElement('div');
      overlay.style.cssText =
        'position:fixed;inset:0;background:rgba(10,20,40,.55);display:flex;align-items:center;' +
        'justify-content:center;z-index:2147483647;';
      var frame = document.createElement('iframe');
      frame.name = 'payforward-authentication';
      frame.title = 'Card authentication (3-D Secure)';
      frame.src = url;
      frame.style.cssText = 'border:0;border-radius:8px;background:#fff;width:min(440px,95vw);height:min(560px,90vh);';
      overlay.appendChild(frame);
      document.body.appendChild(overlay);
      this.authentication = {
        frame: frame,
        done: () => {
          this.authentication = null;
          overlay.remove();
          resolve();
        },
      };
    });
  };

  window.PayForward = PayForward;
})();
