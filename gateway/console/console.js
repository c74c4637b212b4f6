// orderflow console: a small client of the public GraphQL API. It signs in with a bearer token
// (kept for this tab only) and everything it shows is authorized as for any other client.
"use strict";

const tokenKey = "orderflow.token";
let refresh = null; // the current page's refresh timer

const $ = (sel, el = document) => el.querySelector(sel);

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Times in the browser's zone.
function when(t) {
  return t ? new Date(t).toLocaleString() : "";
}

// clock is a time of day to the millisecond, for events that follow each other within a second.
function clock(t) {
  const d = new Date(t);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// offset is how long after from t came, in ms (or s past 10 s).
function offset(t, from) {
  const ms = Math.max(0, new Date(t) - new Date(from));
  return ms < 10000 ? `+${ms} ms` : `+${(ms / 1000).toFixed(1)} s`;
}

function money(cents) {
  return (cents / 100).toFixed(2);
}

// The role the token names (the gateway checks it; this only decides what to offer).
function role() {
  try {
    const part = sessionStorage.getItem(tokenKey).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).role || "";
  } catch {
    return "";
  }
}

class APIError extends Error {
  constructor(message, codes) {
    super(message);
    this.codes = codes;
  }
}

async function gql(query, variables) {
  const r = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + sessionStorage.getItem(tokenKey) },
    body: JSON.stringify({ query, variables }),
  });
  if (r.status === 401) {
    signOut("The gateway refused this token: sign in again.");
    throw new APIError("unauthenticated", ["UNAUTHENTICATED"]);
  }
  const body = await r.json();
  if (body.errors && body.errors.length) {
    throw new APIError(body.errors.map((e) => e.message).join("; "), body.errors.map((e) => e.extensions && e.extensions.code));
  }
  return body.data;
}

function showError(msg) {
  const el = $("#error");
  el.textContent = msg || "";
  el.hidden = !msg;
}

function signOut(why) {
  sessionStorage.removeItem(tokenKey);
  location.hash = "#/signin";
  showError(why);
}

// every runs fn now and every ms until the page changes. A refresh still in flight when the page
// changes (its query answered after the user moved on) is dropped, its errors too: the elements it
// would fill are gone.
let generation = 0;
function every(ms, fn) {
  clearInterval(refresh);
  const mine = ++generation;
  const live = () => mine === generation;
  const tick = () => fn(live).catch((e) => live() && showError(e.message));
  tick();
  refresh = setInterval(tick, ms);
}

// Pages, by the first part of the hash route.
const pages = {
  signin() {
    main(`<h1>Sign in</h1>
      <form id="signin">
        <label for="token">Bearer token (the dev admin token <code>make run</code> prints, or one from <code>orderflow token</code>)
          <textarea id="token" required autocomplete="off" spellcheck="false"></textarea></label>
        <button type="submit">Sign in</button>
      </form>`);
    $("#signin").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(tokenKey, $("#token").value.trim().replace(/^Bearer\s+/i, ""));
      showError("");
      location.hash = "#/orders";
    });
  },

  orders(params) {
    main(`<h1>Orders</h1>
      <form id="search">
        <label for="q-id">Order id<input id="q-id" name="id"></label>
        <label for="q-customer">Customer id<input id="q-customer" name="customer"></label>
        <label for="q-status">Status<select id="q-status" name="status">
          <option value="">any</option><option>PLACED</option><option>CONFIRMED</option><option>PAID</option>
          <option>SHIPPED</option><option>DELIVERED</option><option>CANCELLED</option></select></label>
        <button type="submit">Search</button>
      </form>
      <div class="table" id="list"><p class="muted">Loading…</p></div>`);
    $("#q-customer").value = params.get("customer") || "";
    $("#q-status").value = params.get("status") || "";
    $("#search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = $("#q-id").value.trim();
      if (id) {
        location.hash = "#/order/" + encodeURIComponent(id);
        return;
      }
      const q = new URLSearchParams();
      if ($("#q-customer").value.trim()) q.set("customer", $("#q-customer").value.trim());
      if ($("#q-status").value) q.set("status", $("#q-status").value);
      location.hash = "#/orders?" + q;
    });
    every(3000, async (live) => {
      const d = await gql(`query ConsoleOrders($c: ID, $s: OrderStatus) { orders(customerId: $c, status: $s, first: 50) { nodes { id customerId status totalCents placedAt } } }`,
        { c: params.get("customer") || null, s: params.get("status") || null });
      if (!live()) return;
      const rows = d.orders.nodes.map((o) => `<tr><td class="mono"><a href="#/order/${esc(encodeURIComponent(o.id))}">${esc(o.id)}</a></td>
        <td class="mono hide-narrow">${esc(o.customerId)}</td><td class="status ${esc(o.status)}">${esc(o.status)}</td>
        <td>${money(o.totalCents)}</td><td class="hide-narrow">${when(o.placedAt)}</td></tr>`);
      $("#list").innerHTML = rows.length
        ? `<table><caption class="muted">Newest first</caption><thead><tr><th>Order</th><th class="hide-narrow">Customer</th><th>Status</th><th>Total</th><th class="hide-narrow">Placed</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
        : `<p>No orders match.</p>`;
    });
  },

  order(params, id) {
    main(`<h1>Order <span class="mono">${esc(id)}</span></h1><div id="order"><p class="muted">Loading…</p></div>`);
    // Every second a light query says whether the order or its saga moved; only then is the whole
    // page read again (its timeline comes from the event log, not a read model).
    let mark = null;
    every(1000, async (live) => {
      const m = await gql(`query ConsoleOrderMark($id: ID!) { order(id: $id) { updatedAt fulfillment { updatedAt } } }`, { id });
      if (!live()) return;
      const now = JSON.stringify(m.order);
      if (mark !== null && now === mark) return;
      mark = now;
      const d = await gql(`query ConsoleOrder($id: ID!) { order(id: $id) { id customerId status totalCents placedAt cancelReason
        lines { productId quantity unitPriceCents } history { status at }
        fulfillment { step outcome attempts lastError }
        timeline { at stream type actor traceId summary } } }`, { id });
      if (!live()) return;
      const o = d.order;
      if (!o) {
        $("#order").innerHTML = `<p>No order <span class="mono">${esc(id)}</span> (yet): this page shows it as soon as it is placed.</p>`;
        return;
      }
      const f = o.fulfillment;
      $("#order").innerHTML = `<dl>
          <dt>Status</dt><dd><span id="status" class="status ${esc(o.status)}">${esc(o.status)}</span>${o.cancelReason ? ` <span class="muted">(${esc(o.cancelReason)})</span>` : ""}</dd>
          <dt>Customer</dt><dd class="mono">${esc(o.customerId)}</dd>
          <dt>Total</dt><dd>${money(o.totalCents)}</dd>
          <dt>Placed</dt><dd>${when(o.placedAt)}</dd>
          <dt>Fulfillment</dt><dd id="step">${f ? `${esc(f.step)}${f.outcome ? " · " + esc(f.outcome) : ""}${f.lastError ? ` · <span class="bad">${esc(f.lastError)}</span>` : ""}` : `<span class="muted">not started</span>`}</dd>
        </dl>
        <h2>Lines</h2><div class="table"><table><thead><tr><th>Product</th><th>Quantity</th><th>Unit price</th></tr></thead><tbody>
        ${o.lines.map((l) => `<tr><td class="mono">${esc(l.productId)}</td><td>${l.quantity}</td><td>${money(l.unitPriceCents)}</td></tr>`).join("")}</tbody></table></div>
        <h2>Status history</h2><ol>${o.history.map((h) => `<li><span class="status ${esc(h.status)}">${esc(h.status)}</span> ${when(h.at)}</li>`).join("")}</ol>
        <h2>Timeline</h2>${o.timeline.length ? `<p class="muted">From ${when(o.timeline[0].at)}; times to the millisecond, and after the first event.</p>` : ""}
        <div class="table"><table><thead><tr><th>When</th><th>What</th><th class="hide-narrow">Stream</th><th>Who</th><th class="hide-narrow">Trace</th></tr></thead><tbody>
        ${o.timeline.map((e) => `<tr><td class="mono when">${clock(e.at)} <span class="muted">${offset(e.at, o.timeline[0].at)}</span></td><td>${esc(e.summary || e.type)}</td><td class="mono hide-narrow">${esc(e.stream)}</td>
          <td class="mono">${esc(e.actor || "")}</td><td class="mono hide-narrow">${esc(e.traceId || "")}</td></tr>`).join("")}</tbody></table></div>`;
    });
  },

  overview() {
    if (!adminOnly("Overview")) return;
    main(`<h1>Overview</h1><div class="cards" id="cards"><p class="muted">Loading…</p></div>
      <p class="muted">Live: refreshed every 2 s; rates over the last interval, charts over the last two minutes.</p>`);
    const series = {}; // name → recent values
    let last = null;
    every(2000, async (live) => {
      const d = await gql(`query ConsoleOverview { fulfillmentCounts { inFlight confirmed compensated timedOut stuck outbox }
        paymentProvider { configured breaker } projections { name lagEvents lagSeconds paused } }`);
      if (!live()) return;
      const c = d.fulfillmentCounts, now = Date.now();
      const total = c.inFlight + c.confirmed + c.compensated + c.timedOut;
      const rate = (v, was) => (last && now > last.at ? Math.max(0, ((v - was) * 1000) / (now - last.at)) : 0);
      const figures = {
        "Orders placed /s": rate(total, last && last.total),
        "Confirmed /s": rate(c.confirmed, last && last.confirmed),
        "Cancelled /s": rate(c.compensated + c.timedOut, last && last.cancelled),
        "Sagas in flight": c.inFlight,
        "Sagas stuck": c.stuck,
        "Projection lag (s, worst)": Math.max(0, ...d.projections.map((p) => p.lagSeconds)),
      };
      last = { at: now, total, confirmed: c.confirmed, cancelled: c.compensated + c.timedOut };
      const cards = Object.entries(figures).map(([name, v]) => {
        const s = (series[name] = (series[name] || []).concat([v]).slice(-60));
        return `<section class="card" aria-label="${esc(name)}"><h2>${esc(name)}</h2><div class="figure">${Number.isInteger(v) ? v : v.toFixed(1)}</div>${spark(s)}</section>`;
      });
      const p = d.paymentProvider;
      cards.push(`<section class="card" aria-label="card provider"><h2>Card provider</h2><div class="figure ${p.breaker === "closed" ? "ok" : "bad"}" id="breaker">${esc(p.configured ? p.breaker || "?" : "none")}</div><p class="muted">circuit breaker</p></section>`);
      cards.push(`<section class="card" aria-label="sagas by state"><h2>Sagas by state</h2><p id="saga-counts">${c.inFlight} in flight · ${c.confirmed} confirmed · ${c.compensated} compensated · ${c.timedOut} timed out · ${c.stuck} stuck</p></section>`);
      $("#cards").innerHTML = cards.join("");
    });
  },

  sagas() {
    if (!adminOnly("Sagas")) return;
    main(`<h1>Sagas</h1><h2>In flight, by step</h2><div id="inflight"></div><h2>Stuck</h2><div class="table" id="stuck"></div>
      <h2>Compensated lately</h2><div class="table" id="compensated"></div>`);
    const table = (list, empty) => list.length
      ? `<table><thead><tr><th>Order</th><th>Step</th><th>Attempts</th><th class="hide-narrow">Deadline</th><th>Last error</th><th class="hide-narrow">Changed</th></tr></thead><tbody>${list.map((f) =>
          `<tr><td class="mono"><a href="#/order/${esc(encodeURIComponent(f.orderId))}">${esc(f.orderId)}</a></td><td>${esc(f.step)}</td><td>${f.attempts}</td>
           <td class="hide-narrow">${when(f.deadline)}</td><td class="bad">${esc(f.lastError || "")}</td><td class="hide-narrow">${when(f.updatedAt)}</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">${empty}</p>`;
    every(2000, async (live) => {
      const d = await gql(`query ConsoleSagas { recent: fulfillments(first: 500) { orderId step outcome attempts deadline lastError updatedAt }
        stuck: fulfillments(stuck: true, first: 100) { orderId step attempts deadline lastError updatedAt }
        cancelled: fulfillments(step: "CANCELLED", first: 20) { orderId step attempts deadline lastError updatedAt } }`);
      if (!live()) return;
      const steps = ["RESERVING", "AUTHORIZING", "CONFIRMING"];
      const inflight = d.recent.filter((f) => steps.includes(f.step));
      $("#inflight").innerHTML = `<p id="by-step">${steps.map((s) => `${s}: ${inflight.filter((f) => f.step === s).length}`).join(" · ")}</p>` + table(inflight, "None in flight.");
      $("#stuck").innerHTML = table(d.stuck, "None stuck.");
      $("#compensated").innerHTML = table(d.cancelled, "None compensated.");
    });
  },

  services() {
    if (!adminOnly("Services")) return;
    main(`<h1>Services</h1><p class="muted">Instances that answer NATS micro discovery, with their endpoints' figures since they started.</p><div class="table" id="services"></div>`);
    every(5000, async (live) => {
      const d = await gql(`query ConsoleServices { services { service id version startedAt endpoints { name subject requests errors averageMs } } }`);
      if (!live()) return;
      $("#services").innerHTML = `<table><thead><tr><th>Service</th><th class="hide-narrow">Instance</th><th>Endpoint</th><th class="hide-narrow">Subject</th><th>Requests</th><th>Errors</th><th>Avg ms</th></tr></thead><tbody>
        ${d.services.map((s) => s.endpoints.map((e, i) => `<tr data-service="${esc(s.service)}"><td>${i ? "" : esc(s.service)}</td><td class="mono hide-narrow">${i ? "" : esc(s.id)}</td>
          <td>${esc(e.name)}</td><td class="mono hide-narrow">${esc(e.subject)}</td><td>${e.requests}</td><td class="${e.errors ? "bad" : ""}">${e.errors}</td><td>${e.averageMs.toFixed(1)}</td></tr>`).join("")).join("")}</tbody></table>`;
    });
  },

  projections() {
    if (!adminOnly("Projections")) return;
    main(`<h1>Projections</h1><div class="table" id="projections"><p class="muted">Loading…</p></div>
      <h2>Parked events</h2><div class="table" id="parked"><p class="muted">Choose a read model's parked events above.</p></div>`);
    const lag = {}; // read model → recent lag in seconds, for its chart
    const act = async (mutation, name) => {
      try {
        if (mutation === "replayParkedEvents") await gql(`mutation ConsoleReplayParkedEvents($n: String!) { replayParkedEvents(projection: $n) }`, { n: name });
        else await gql(`mutation Console_${mutation}($n: String!) { ${mutation}(name: $n) { name } }`, { n: name });
        showError("");
      } catch (e) {
        showError(e.message);
      }
    };
    // A read model's workers, and a cell per partition: its worker's process (by colour, w0…w5:
    // a worker is host-pid-id) and its lag.
    const owners = {};
    const partitions = (p) => {
      const held = p.partitions.filter((x) => x.owner).length;
      const cells = p.partitions.map((x) => {
        const process = x.owner.split("-").slice(0, -1).join("-");
        if (x.owner && !(process in owners)) owners[process] = Object.keys(owners).length;
        const cls = x.owner ? `w${owners[process] % 6}` : "free";
        return `<span class="part ${cls}" title="partition ${x.partition} · ${esc(x.owner || "no worker")} · ${x.lag} behind · epoch ${x.epoch}"></span>`;
      });
      return `${p.workers} worker${p.workers === 1 ? "" : "s"} · <span class="${held < p.partitions.length ? "bad" : ""}">${held}/${p.partitions.length} held</span>
        <div class="parts" aria-label="partitions of ${esc(p.name)}">${cells.join("")}</div>`;
    };
    const parked = async (name) => {
      const d = await gql(`query ConsoleParkedEvents($n: String!) { parkedEvents(projection: $n) { eventId stream type position error attempts parkedAt } }`, { n: name });
      $("#parked").innerHTML = d.parkedEvents.length
        ? `<p>${esc(name)}: ${d.parkedEvents.length} parked <button type="button" data-act="replayParkedEvents" data-name="${esc(name)}">Replay them</button></p>
          <table><thead><tr><th>Event</th><th>Type</th><th class="hide-narrow">Position</th><th>Error</th><th>Attempts</th><th class="hide-narrow">Parked</th></tr></thead><tbody>
          ${d.parkedEvents.map((e) => `<tr><td class="mono">${esc(e.stream)}</td><td>${esc(e.type)}</td><td class="mono hide-narrow">${esc(e.position)}</td>
            <td class="bad">${esc(e.error)}</td><td>${e.attempts}</td><td class="hide-narrow">${when(e.parkedAt)}</td></tr>`).join("")}</tbody></table>`
        : `<p>${esc(name)}: no parked events.</p>`;
    };
    for (const id of ["#projections", "#parked"]) {
      $(id).addEventListener("click", (ev) => {
        const b = ev.target.closest("button[data-act]");
        if (!b) return;
        if (b.dataset.act === "showParked") {
          parked(b.dataset.name).catch((e) => showError(e.message));
          return;
        }
        b.disabled = true;
        act(b.dataset.act, b.dataset.name).then(() => b.dataset.act === "replayParkedEvents" && parked(b.dataset.name));
      });
    }
    every(1000, async (live) => {
      const d = await gql(`query ConsoleProjections { projections { name position lagEvents lagSeconds paused rebuilding parked
        workers partitions { partition owner lag epoch } rebuild { phase done total rate etaSeconds error } } }`);
      if (!live()) return;
      $("#projections").innerHTML = `<table><thead><tr><th>Read model</th><th>State</th><th>Lag</th><th class="hide-narrow">Position</th><th>Workers</th><th>Parked</th><th>Rebuild</th><th>Actions</th></tr></thead><tbody>
        ${d.projections.map((p) => {
          const r = p.rebuild;
          const pct = r && r.total > 0 ? Math.min(100, Math.round((100 * r.done) / r.total)) : r && r.phase === "done" ? 100 : 0;
          const bar = r ? `<progress max="100" value="${pct}" aria-label="rebuild of ${esc(p.name)}"></progress> <span class="rebuild-pct">${pct}%</span>
              <span class="muted">${esc(r.phase)}${r.phase !== "done" && r.rate > 0 ? ` · ${Math.round(r.rate)}/s · ${Math.round(r.etaSeconds)} s to go` : ""}</span>${r.error ? ` <span class="bad">${esc(r.error)}</span>` : ""}` : "";
          return `<tr data-projection="${esc(p.name)}"><th scope="row">${esc(p.name)}</th>
            <td class="state ${p.paused ? "bad" : "ok"}">${p.paused ? "paused" : p.rebuilding ? "rebuilding" : "running"}</td>
            <td>${p.lagEvents} events · ${p.lagSeconds.toFixed(1)} s${spark((lag[p.name] = (lag[p.name] || []).concat([p.lagSeconds]).slice(-120)))}</td>
            <td class="mono hide-narrow">${esc(p.position)}</td>
            <td>${partitions(p)}</td>
            <td>${p.parked ? `<button type="button" class="secondary" data-act="showParked" data-name="${esc(p.name)}">${p.parked} parked</button>` : "0"}</td><td>${bar}</td>
            <td>${p.paused ? `<button type="button" data-act="resumeProjection" data-name="${esc(p.name)}">Resume</button>`
                           : `<button type="button" class="secondary" data-act="pauseProjection" data-name="${esc(p.name)}">Pause</button>`}
                <button type="button" class="secondary" data-act="rebuildProjection" data-name="${esc(p.name)}" ${p.rebuilding ? "disabled" : ""}>Rebuild</button></td></tr>`;
        }).join("")}</tbody></table>`;
    });
  },
};

// adminOnly renders a refusal for a non-admin token and says whether to go on.
function adminOnly(title) {
  if (role() === "admin") return true;
  main(`<h1>${esc(title)}</h1><p id="denied">${esc(title)} is for admins only: this token is not an admin's.</p>`);
  return false;
}

// spark is a small line chart of values, newest last.
function spark(values) {
  if (values.length < 2) return `<svg aria-hidden="true"></svg>`;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${((i * 100) / (values.length - 1)).toFixed(1)},${(38 - (v / max) * 36).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 100 40" preserveAspectRatio="none" aria-hidden="true"><polyline points="${pts}"/></svg>`;
}

function main(html) {
  $("#main").innerHTML = html;
}

function route() {
  clearInterval(refresh);
  showError("");
  const [path, query] = (location.hash.slice(2) || (role() === "admin" ? "overview" : "orders")).split("?");
  const [page, ...rest] = path.split("/");
  const signedIn = !!sessionStorage.getItem(tokenKey);
  $("#nav").hidden = !signedIn;
  for (const a of document.querySelectorAll("#nav [data-admin]")) a.hidden = role() !== "admin";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === "#/" + page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!signedIn && page !== "signin") {
    location.hash = "#/signin";
    return;
  }
  const render = pages[page] || pages.orders;
  render(new URLSearchParams(query || ""), decodeURIComponent(rest.join("/")));
  $("#main").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  route();
});
