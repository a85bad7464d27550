// lb status page: read-only. The token is asked for once and kept in
// sessionStorage (this tab only); the table is refreshed every 2 seconds.
"use strict";
(function () {
  const key = "lb-admin-token";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function render(list) {
    const body = $("backends");
    body.replaceChildren();
    for (const b of list) {
      const tr = document.createElement("tr");
      if (b.state !== "active") tr.classList.add("draining");
      if (!b.healthy) tr.classList.add("down");
      cell(tr, b.name);
      cell(tr, b.url);
      cell(tr, b.state);
      cell(tr, b.healthy ? "yes" : "no", "healthy");
      cell(tr, String(b.in_flight), "num");
      cell(tr, String(b.upgraded), "num");
      cell(tr, String(b.checks_ok), "num");
      cell(tr, b.last_check && !b.last_check.startsWith("0001-") ? b.last_check : "-");
      cell(tr, b.version || "-");
      cell(tr, String(b.requests), "num");
      cell(tr, String(b.failures), "num");
      cell(tr, b.last_error || "");
      body.appendChild(tr);
    }
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  function showLogin(msg) {
    if (timer) clearInterval(timer);
    timer = null;
    $("status").hidden = true;
    $("login").hidden = false;
    $("error").textContent = msg || "";
  }

  async function refresh() {
    const token = sessionStorage.getItem(key);
    if (!token) return showLogin("");
    try {
      const resp = await fetch("/api/backends", {
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
      });
      if (resp.status === 401) {
        sessionStorage.removeItem(key);
        return showLogin("That token was refused.");
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      render(await resp.json());
      $("error").textContent = "";
      $("login").hidden = true;
      $("status").hidden = false;
      if (!timer) timer = setInterval(refresh, 2000);
    } catch (e) {
      $("error").textContent = "Cannot reach the admin API: " + e.message;
    }
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(key, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(key);
    showLogin("");
  });
  refresh();
})();
