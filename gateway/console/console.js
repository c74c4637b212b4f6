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

function every(ms, fn) {
  clearInterval(refresh);
  const tick = () => fn().catch((e) => showError(e.message));
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
    every(3000, async () => {
      const d = await gql(`query($c: ID, $s: OrderStatus) { orders(customerId: $c, status: $s, first: 50) { nodes { id customerId status totalCents placedAt } } }`,
        { c: params.get("customer") || null, s: params.get("status") || null });
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
    every(1000, async () => {
      const d = await gql(`query($id: ID!) { order(id: $id) { id customerId status totalCents placedAt cancelReason
        lines { productId quantity unitPriceCents } history { status at }
        fulfillment { step outcome attempts lastError }
        timeline { at stream type actor traceId summary } } }`, { id });
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
        <h2>Timeline</h2><div class="table"><table><thead><tr><th>When</th><th>What</th><th class="hide-narrow">Stream</th><th>Who</th><th class="hide-narrow">Trace</th></tr></thead><tbody>
        ${o.timeline.map((e) => `<tr><td>${when(e.at)}</td><td>${esc(e.summary || e.type)}</td><td class="mono hide-narrow">${esc(e.stream)}</td>
          <td class="mono">${esc(e.actor || "")}</td><td class="mono hide-narrow">${esc(e.traceId || "")}</td></tr>`).join("")}</tbody></table></div>`;
    });
  },

  projections() {
    if (role() !== "admin") {
      main(`<h1>Projections</h1><p id="denied">Projections are for admins only: this token is not an admin's.</p>`);
      return;
    }
    main(`<h1>Projections</h1><div class="table" id="projections"><p class="muted">Loading…</p></div>`);
    const act = async (mutation, name) => {
      try {
        await gql(`mutation($n: String!) { ${mutation}(name: $n) { name } }`, { n: name });
        showError("");
      } catch (e) {
        showError(e.message);
      }
    };
    $("#projections").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b) {
        b.disabled = true;
        act(b.dataset.act, b.dataset.name);
      }
    });
    every(1000, async () => {
      const d = await gql(`{ projections { name position lagEvents lagSeconds paused rebuilding parked
        rebuild { phase done total rate etaSeconds error } } }`);
      $("#projections").innerHTML = `<table><thead><tr><th>Read model</th><th>State</th><th>Lag</th><th class="hide-narrow">Position</th><th>Parked</th><th>Rebuild</th><th>Actions</th></tr></thead><tbody>
        ${d.projections.map((p) => {
          const r = p.rebuild;
          const pct = r && r.total > 0 ? Math.min(100, Math.round((100 * r.done) / r.total)) : r && r.phase === "done" ? 100 : 0;
          const bar = r ? `<progress max="100" value="${pct}" aria-label="rebuild of ${esc(p.name)}"></progress> <span class="rebuild-pct">${pct}%</span>
              <span class="muted">${esc(r.phase)}${r.phase !== "done" && r.rate > 0 ? ` · ${Math.round(r.rate)}/s · ${Math.round(r.etaSeconds)} s to go` : ""}</span>${r.error ? ` <span class="bad">${esc(r.error)}</span>` : ""}` : "";
          return `<tr data-projection="${esc(p.name)}"><th scope="row">${esc(p.name)}</th>
            <td class="state ${p.paused ? "bad" : "ok"}">${p.paused ? "paused" : p.rebuilding ? "rebuilding" : "running"}</td>
            <td>${p.lagEvents} events · ${p.lagSeconds.toFixed(1)} s</td><td class="mono hide-narrow">${esc(p.position)}</td><td>${p.parked}</td><td>${bar}</td>
            <td>${p.paused ? `<button type="button" data-act="resumeProjection" data-name="${esc(p.name)}">Resume</button>`
                           : `<button type="button" class="secondary" data-act="pauseProjection" data-name="${esc(p.name)}">Pause</button>`}
                <button type="button" class="secondary" data-act="rebuildProjection" data-name="${esc(p.name)}" ${p.rebuilding ? "disabled" : ""}>Rebuild</button></td></tr>`;
        }).join("")}</tbody></table>`;
    });
  },
};

function main(html) {
  $("#main").innerHTML = html;
}

function route() {
  clearInterval(refresh);
  showError("");
  const [path, query] = (location.hash.slice(2) || "orders").split("?");
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
