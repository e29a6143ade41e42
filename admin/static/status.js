'use strict';
// credproxy status page: fetches status.json every 5 s and, in between,
// counts each token's expiry down; it also shows the days left of each
// route's long-lived credential when credproxy knows them. Everything
// shown is set as text, never as HTML. The JSON holds no token or secret.

let data = null;
let fetchedAt = 0; // performance.now() when data arrived
let problem = '';

// elapsed is the seconds since data was fetched; times are shown relative
// to the server's clock ("now" in the JSON), so a skewed browser clock
// does not matter.
function elapsed() { return (performance.now() - fetchedAt) / 1000; }

function duration(sec) {
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600);
  const m = Math.floor(sec % 3600 / 60), s = sec % 60;
  const p = (n) => String(n).padStart(2, '0');
  if (d > 0) return d + 'd ' + p(h) + 'h ' + p(m) + 'm';
  if (h > 0) return h + 'h ' + p(m) + 'm ' + p(s) + 's';
  if (m > 0) return m + 'm ' + p(s) + 's';
  return s + 's';
}

// secondsFromNow is how far t (RFC 3339) is from the server's now, as of
// this moment.
function secondsFromNow(t) {
  if (!t) return null;
  return (parseTime(t) - parseTime(data.now)) / 1000 - elapsed();
}

// parseTime reads Go's RFC 3339 times, whose nanoseconds not every
// browser's Date.parse accepts: milliseconds are kept.
function parseTime(t) { return Date.parse(t.replace(/(\.\d{3})\d+/, '$1')); }

function cell(tr, cls, text, title) {
  const td = document.createElement('td');
  td.className = cls;
  td.textContent = text;
  if (title) td.title = title;
  tr.appendChild(td);
  return td;
}

// credentialSources says where a credential expiry came from.
const credentialSources = {
  config: 'set by CREDENTIAL_EXPIRES_AT',
  lookup: 'reported by the identity service',
  exchange: 'reported with the last token',
};

// credentialCell shows how long the route's long-lived credential has
// left: days while there are days, a warning colour under 7 days, and
// "-" while it is unknown.
function credentialCell(tr, r) {
  const td = cell(tr, 'credential', r.credential_expires_at ? '' : '-');
  if (!r.credential_expires_at) return;
  const s = secondsFromNow(r.credential_expires_at);
  const span = document.createElement('span');
  if (s <= 0) {
    span.textContent = 'expired';
    span.className = 'pill expired';
  } else {
    const days = Math.floor(s / 86400);
    span.textContent = days >= 1 ? days + (days === 1 ? ' day' : ' days') : duration(s);
    if (s < 7 * 86400) span.className = 'pill soon';
  }
  td.appendChild(span);
  td.title = r.credential_expires_at + ' (' + (credentialSources[r.credential_expiry_source] || r.credential_expiry_source) + ')';
}

function render() {
  const overall = document.getElementById('overall');
  const updated = document.getElementById('updated');
  const banner = document.getElementById('problem');
  banner.hidden = problem === '';
  banner.textContent = problem;
  if (!data) return;
  overall.textContent = data.shutting_down ? 'shutting down' : (data.ready ? 'ready' : 'not ready');
  overall.className = 'pill ' + (data.ready ? 'ready' : 'notready');
  updated.textContent = 'updated ' + Math.floor(elapsed()) + ' s ago';

  const tbody = document.querySelector('#routes tbody');
  const rows = [];
  for (const r of data.routes) {
    const tr = document.createElement('tr');
    tr.dataset.route = r.route;
    cell(tr, 'route', r.route);
    cell(tr, 'kind', r.kind);
    cell(tr, 'upstream', r.upstream || '-', r.listen ? 'reverse proxy on ' + r.listen : 'forward proxy only');
    const st = cell(tr, 'state', '');
    const pill = document.createElement('span');
    pill.className = 'pill ' + r.state;
    pill.textContent = r.state;
    st.appendChild(pill);
    if (r.consecutive_failures) {
      const f = document.createElement('span');
      f.className = 'failures';
      f.textContent = r.consecutive_failures + ' failed in a row';
      st.appendChild(f);
    }

    let left = '-', cls = 'countdown';
    if (r.expires_at) {
      const s = secondsFromNow(r.expires_at);
      left = s > 0 ? duration(s) : 'expired';
      if (s < 60) cls += ' soon';
    } else if (r.state === 'valid' || r.state === 'renewing') {
      left = 'never';
    }
    cell(tr, cls, left, r.expires_at || '');
    credentialCell(tr, r);
    const next = secondsFromNow(r.next_exchange);
    cell(tr, 'next', next === null ? '-' : (next > 0 ? 'in ' + duration(next) : 'due'), r.next_exchange || '');
    const last = secondsFromNow(r.last_attempt);
    cell(tr, 'last', last === null ? 'never' : duration(-last) + ' ago', r.last_attempt || '');
    cell(tr, 'error', r.last_error || '');
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

async function refresh() {
  try {
    const resp = await fetch('status.json', {cache: 'no-store'});
    if (!resp.ok) throw new Error('status.json: HTTP ' + resp.status);
    data = await resp.json();
    fetchedAt = performance.now();
    problem = '';
  } catch (e) {
    problem = 'credproxy did not answer: ' + e.message + (data ? ' (showing the last answer)' : '');
  }
  render();
}

refresh();
setInterval(refresh, 5000);
setInterval(render, 1000);
