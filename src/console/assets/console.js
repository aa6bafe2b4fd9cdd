// The Switchyard console's only script (no inline script is allowed by the
// page's CSP). It never turns data into markup: values go in with textContent.
"use strict";

// Events page: the live tail, over server-sent events.
function startTail() {
  const body = document.getElementById("tail");
  if (!body) return;
  const status = document.getElementById("tail-status");
  const source = new EventSource(body.dataset.stream);
  source.addEventListener("open", () => { status.textContent = "Live tail: connected."; });
  source.addEventListener("error", () => { status.textContent = "Live tail: reconnecting…"; });
  source.addEventListener("lagged", (m) => {
    status.textContent = "Live tail: skipped " + m.data + " events (too fast to show).";
  });
  source.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    const row = document.createElement("tr");
    row.dataset.eventId = e.id;
    row.className = "fresh";
    const cell = (text) => { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; };
    cell(e.time);
    const link = document.createElement("a");
    link.href = "/console/events/" + encodeURIComponent(e.id);
    link.textContent = e.detail_type;
    cell("").appendChild(link);
    cell(e.source);
    cell(e.order_id);
    cell(e.destination);
    cell(e.id).className = "mono";
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  });
}

// Flow page: refresh the graph every 2 s (the fragment is server-escaped HTML of this origin).
function startFlowRefresh() {
  const flow = document.getElementById("flow");
  if (!flow) return;
  const refresh = async () => {
    try {
      const answer = await fetch(flow.dataset.refresh, { credentials: "same-origin" });
      if (answer.ok) {
        const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
        flow.replaceChildren(...doc.body.childNodes);
      }
    } catch (_) { /* the server went away; try again next time */ }
  };
  setInterval(refresh, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  startTail();
  startFlowRefresh();
});
