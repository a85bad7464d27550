// lb status page: read-only. The token is asked for once and kept in
// sessionStorage (this tab only). Every second it reads /api/backends and
// /api/status (with the token) and /metrics (without), and shows per backend
// the request rate, latency percentiles and status codes of the last minute
// (lbMetrics, metrics.js), and lb's own state. A failed read is shown and
// retried on the same schedule; the figures then stay as they were, dimmed.
"use strict";
(function () {
  const key = "lb-admin-token";
  const every = 1000;
  const $ = (id) => document.getElementById(id);
  const window60 = new window.lbMetrics.Window(60000);
  let timer = null;
  let lastOK = 0;

  class Unauthorized extends Error {}

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  // age renders a number of seconds as "12 s", "5 min", "3 h 20 min", "4 d".
  function age(s) {
    if (!(s >= 0)) return "-";
    if (s < 60) return Math.floor(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d";
  }

  function since(iso, now) {
    if (!iso || iso.startsWith("0001-")) return "-";
    return age((now - Date.parse(iso)) / 1000);
  }

  function rate(r) {
    if (r === undefined) return "-";
    if (r >= 100) return r.toFixed(0);
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2);
  }

  function duration(q) {
    if (!q) return "-";
    const ms = q.value * 1000;
    const text = ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms >= 10 ? ms.toFixed(0) + " ms" : ms.toFixed(1) + " ms";
    return (q.over ? "> " : q.under ? "< " : "") + text;
  }

  function codes(c) {
    const keys = Object.keys(c || {}).sort();
    if (keys.length === 0) return "-";
    return keys.map((k) => k + ": " + c[k]).join("  ");
  }

  async function get(path, token) {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const resp = await fetch(path, { headers: headers, cache: "no-store" });
    if (resp.status === 401) throw new Unauthorized();
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status + " " + resp.statusText);
    return path === "/metrics" ? resp.text() : resp.json();
  }

  function renderLB(st, view) {
    const now = Date.parse(st.now);
    const ready = $("lb-ready");
    if (st.ready === undefined) {
      ready.textContent = "-";
      ready.className = "";
    } else {
      ready.textContent = st.ready === "ready" ? "yes" : "no: " + st.ready;
      ready.className = st.ready === "ready" ? "good" : "bad";
    }
    const fo = $("lb-failopen");
    fo.textContent = st.fail_open ? "yes: no active backend is healthy" : "no";
    fo.className = st.fail_open ? "bad" : "good";
    $("lb-started").textContent = age((now - Date.parse(st.started)) / 1000) + " ago";
    if (view) {
      let text = rate(view.lb.rate) + "/s";
      if (view.lb.retries > 0) text += ", " + view.lb.retries + " retried";
      if (view.lb.failOpen > 0) text += ", " + view.lb.failOpen + " failed open";
      if (view.lb.budgetExhausted > 0) text += ", retry budget spent " + view.lb.budgetExhausted + "x";
      const none = view.backends.none;
      if (none && none.rate > 0) text += ", " + rate(none.rate) + "/s answered 503: no backend";
      $("lb-rate").textContent = text;
    } else {
      $("lb-rate").textContent = "measuring...";
    }
    const r = st.last_reload;
    const reload = $("lb-reload");
    const rerr = $("lb-reload-error");
    if (r) {
      reload.textContent = (r.ok ? "ok" : "REFUSED, running config kept") + " (" + r.trigger + ", " +
        since(r.time, now) + " ago)";
      reload.className = r.ok ? "good" : "bad";
      rerr.hidden = r.ok;
      rerr.textContent = r.ok ? "" : r.config + ":\n" + r.error;
    }
    const rows = $("cert-rows");
    rows.replaceChildren();
    if (st.certificates.length === 0) {
      const tr = el("tr");
      tr.appendChild(el("td", "none: lb serves plain HTTP"));
      tr.appendChild(el("td", "-"));
      rows.appendChild(tr);
    }
    for (const c of st.certificates) {
      const tr = el("tr");
      tr.dataset.cert = c.name;
      tr.appendChild(el("td", c.name));
      if (!c.not_after) {
        tr.appendChild(el("td", "no certificate yet", "bad"));
      } else {
        const left = (Date.parse(c.not_after) - now) / 1000;
        const cls = left < 14 * 86400 ? "bad" : left < 30 * 86400 ? "warn" : "";
        tr.appendChild(el("td", "in " + age(left) + " (" + c.not_after.slice(0, 10) + ")", cls));
      }
      rows.appendChild(tr);
    }
  }

  function renderBackends(list, st, view) {
    const now = Date.parse(st.now);
    const body = $("backends");
    body.replaceChildren();
    for (const b of list) {
      const m = view && view.backends[b.name];
      const tr = el("tr");
      tr.dataset.backend = b.name;
      if (b.state !== "active") tr.classList.add("draining");
      tr.classList.add(b.healthy ? "up" : "down");
      tr.appendChild(el("td", b.name, "c-name"));
      tr.appendChild(el("td", b.state, "c-state"));
      tr.appendChild(el("td", b.healthy ? "up" : "down", "c-health"));
      tr.appendChild(el("td", since(b.last_change, now), "c-since"));
      tr.appendChild(el("td", view ? rate(m ? m.rate : 0) : "-", "num c-rate"));
      tr.appendChild(el("td", duration(m && m.p50), "num c-p50"));
      tr.appendChild(el("td", duration(m && m.p90), "num c-p90"));
      tr.appendChild(el("td", duration(m && m.p99), "num c-p99"));
      const hasErrors = m && Object.keys(m.codes).some((c) => c >= "500");
      tr.appendChild(el("td", codes(m && m.codes), "c-codes" + (hasErrors ? " bad" : "")));
      tr.appendChild(el("td", String(b.in_flight), "num c-inflight"));
      tr.appendChild(el("td", b.version || "-", "c-version"));
      tr.appendChild(el("td", since(b.last_check, now) + " ago, " + b.checks_ok + " ok in a row", "c-check"));
      tr.appendChild(el("td", b.last_error || "", "c-error"));
      body.appendChild(tr);
    }
    $("window").textContent = view ? "(rates over the last " + Math.round(view.seconds) + " s)" : "(measuring...)";
  }

  function showLogin(msg) {
    if (timer) clearTimeout(timer);
    timer = null;
    window60.clear();
    $("status").hidden = true;
    $("login").hidden = false;
    showError(msg);
  }

  function showError(msg) {
    $("error").textContent = msg || "";
    $("error").hidden = !msg;
  }

  async function refresh() {
    timer = null;
    const token = sessionStorage.getItem(key);
    if (!token) return showLogin("");
    try {
      const [list, st, text] = await Promise.all([
        get("/api/backends", token),
        get("/api/status", token),
        get("/metrics"),
      ]);
      window60.add(window.lbMetrics.snapshot(window.lbMetrics.parse(text), Date.now()));
      const view = window60.view();
      renderLB(st, view);
      renderBackends(list, st, view);
      lastOK = Date.now();
      showError("");
      $("status").classList.remove("stale");
      $("login").hidden = true;
      $("status").hidden = false;
      $("updated").textContent = "updated " + new Date(lastOK).toLocaleTimeString();
    } catch (e) {
      if (e instanceof Unauthorized) {
        sessionStorage.removeItem(key);
        return showLogin("That token was refused.");
      }
      let msg = "Cannot reach lb's admin API (" + e.message + "); retrying every " + every / 1000 + " s.";
      if (lastOK) {
        msg += " Last update " + new Date(lastOK).toLocaleTimeString() + " (" + age((Date.now() - lastOK) / 1000) +
          " ago): the figures below are from then.";
        $("status").classList.add("stale");
      }
      showError(msg);
    }
    timer = setTimeout(refresh, every);
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(key, $("token").value.trim());
    $("token").value = "";
    if (timer) clearTimeout(timer);
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(key);
    showLogin("");
  });
  refresh();
})();
