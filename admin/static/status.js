'use strict';
// credproxy status page. The server renders the page complete; this
// script only keeps it current: every 5 s it fetches the page again and
// puts its fresh #live part in place, and every second it counts the
// times shown on from the server's clock (the page's data-now), so that
// a skewed browser clock does not matter. Nothing is set as HTML from a
// string: the fresh part comes from DOMParser, whose scripts never run.

let serverNow = 0; // the server's clock when #live was rendered, in ms
let renderedAt = 0; // performance.now() when #live was put in place

// parseTime reads Go's RFC 3339 times, whose nanoseconds not every
// browser's Date.parse accepts: milliseconds are kept.
function parseTime(t) { return Date.parse(t.replace(/(\.\d{3})\d+/, '$1')); }

// duration is what admin's Go duration shows, to the second.
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

function adopt() {
  serverNow = parseTime(document.getElementById('live').dataset.now);
  renderedAt = performance.now();
}

// tick counts each time on the page on: ago, in (a next attempt) and
// left (a token's expiry).
function tick() {
  const now = serverNow + (performance.now() - renderedAt);
  for (const el of document.querySelectorAll('time[data-rel]')) {
    const s = (parseTime(el.getAttribute('datetime')) - now) / 1000;
    switch (el.dataset.rel) {
      case 'ago': el.textContent = duration(-s) + ' ago'; break;
      case 'in': el.textContent = s >= 1 ? 'in ' + duration(s) : 'due'; break;
      case 'left':
        el.textContent = s > 0 ? duration(s) : 'expired';
        el.parentElement.classList.toggle('soon', s < 60);
        break;
    }
  }
}

async function refresh() {
  const banner = document.getElementById('problem');
  try {
    const resp = await fetch('./', {cache: 'no-store'});
    if (!resp.ok) throw new Error('HTTP ' + resp.status);
    const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
    const fresh = doc.getElementById('live');
    if (!fresh) throw new Error('the answer is not the status page');
    document.getElementById('live').replaceWith(document.adoptNode(fresh));
    adopt();
    banner.hidden = true;
  } catch (e) {
    banner.textContent = 'credproxy did not answer: ' + e.message + ' (showing the last answer)';
    banner.hidden = false;
  }
}

adopt();
document.getElementById('refreshing').textContent = 'Refreshed every 5 s.';
setInterval(refresh, 5000);
setInterval(tick, 1000);
