// Live feed of the fotagate dashboard. The server renders every row with html/template (which
// escapes what devices and the upstream sent); this script only puts rows in place and
// recounts the summary. See events.go for the events.
'use strict';
(function () {
  const main = document.getElementById('main');
  if (!main) return;
  const live = document.getElementById('live');
  const devices = document.getElementById('device-rows');
  const refusals = document.getElementById('refusal-rows');
  const total = document.getElementById('refusal-total');
  const maxRefusals = 200;

  function parse(html) {
    const t = document.createElement('template');
    t.innerHTML = html;
    return t.content;
  }
  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }
  function setCount(el, n) {
    el.textContent = String(n);
    el.parentElement.dataset.count = String(n); // the tile greys out at zero
  }
  function summarize() {
    const count = (sel) => devices.querySelectorAll(sel).length;
    setCount(document.getElementById('sum-devices'), count('tr[data-id]'));
    setCount(document.getElementById('sum-updating'), count('tr[data-state="updating"]'));
    setCount(document.getElementById('sum-attention'), count('tr[data-attention]'));
  }
  function upsert(d) {
    const row = parse(d.html).firstElementChild;
    const old = document.getElementById(row.id);
    if (old) { old.replaceWith(row); return; }
    devices.querySelector('tr.empty')?.remove();
    const next = Array.from(devices.rows).find((r) => r.dataset.id > d.id) || null;
    row.classList.add('new');
    devices.insertBefore(row, next);
  }
  function prepend(html) {
    refusals.querySelector('tr.empty')?.remove();
    const row = parse(html).firstElementChild;
    row.classList.add('new');
    refusals.prepend(row);
    while (refusals.rows.length > maxRefusals) refusals.lastElementChild.remove();
  }
  function on(es, name, fn) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }

  function connect() {
    const es = new EventSource('/dashboard/events?since=' + encodeURIComponent(main.dataset.since));
    es.onopen = () => setLive('live', 'Live');
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) { setLive('down', 'Reconnecting…'); return; }
      // Closed for good (logged out, gateway restarted, too many pages open): reload the
      // page after a pause; it shows the login form if the session is gone.
      setLive('down', 'Disconnected: reloading soon');
      setTimeout(() => location.reload(), 10000);
    };
    on(es, 'snapshot', (m) => {
      devices.replaceChildren(parse(m.devices));
      refusals.replaceChildren(parse(m.refusals));
      setCount(total, m.total);
      summarize();
    });
    on(es, 'update', (m) => {
      (m.devices || []).forEach(upsert);
      (m.refusals || []).forEach(prepend);
      setCount(total, Number(total.textContent) + (m.refusals || []).length);
      summarize();
    });
    on(es, 'upstream', (m) => {
      document.getElementById('upstream').replaceChildren(parse(m.upstream));
      document.getElementById('cache').replaceChildren(parse(m.cache));
    });
  }
  connect();
})();
