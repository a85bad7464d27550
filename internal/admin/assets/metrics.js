// lbMetrics: the arithmetic of the status page. It parses lb's /metrics
// (Prometheus text format) and keeps a window of about a minute of samples,
// from which it computes what PromQL's rate() and histogram_quantile() would:
// requests per second, status codes and latency percentiles per backend.
"use strict";
window.lbMetrics = (function () {
  // number parses a sample value ("+Inf", "-Inf" and "NaN" included).
  function number(s) {
    if (s === "+Inf" || s === "Inf") return Infinity;
    if (s === "-Inf") return -Infinity;
    return Number(s);
  }

  // parse returns every sample of a text exposition as {name, labels, value}.
  function parse(text) {
    const out = [];
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "" || line[0] === "#") continue;
      let i = 0;
      while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
      const name = line.slice(0, i);
      const labels = {};
      if (line[i] === "{") {
        i++;
        for (;;) {
          while (line[i] === "," || line[i] === " ") i++;
          if (i >= line.length || line[i] === "}") break;
          const eq = line.indexOf("=", i);
          if (eq < 0) break;
          const key = line.slice(i, eq).trim();
          i = eq + 2; // past ="
          let val = "";
          while (i < line.length && line[i] !== '"') {
            if (line[i] === "\\" && i + 1 < line.length) {
              i++;
              val += line[i] === "n" ? "\n" : line[i];
            } else {
              val += line[i];
            }
            i++;
          }
          i++; // past the closing quote
          labels[key] = val;
        }
        i++; // past }
      }
      const fields = line.slice(i).trim().split(/\s+/);
      out.push({ name: name, labels: labels, value: number(fields[0]) });
    }
    return out;
  }

  // snapshot sums a scrape, taken at time t (ms), into what the page shows.
  function snapshot(samples, t) {
    const backends = {};
    const lb = { failOpen: 0, retries: 0, budgetExhausted: 0 };
    const get = (name) => backends[name] || (backends[name] = { codes: {}, buckets: {} });
    for (const s of samples) {
      switch (s.name) {
        case "lb_requests_total": {
          const b = get(s.labels.backend);
          b.codes[s.labels.code] = (b.codes[s.labels.code] || 0) + s.value;
          break;
        }
        case "lb_request_duration_seconds_bucket":
          get(s.labels.backend).buckets[s.labels.le] = s.value;
          break;
        case "lb_fail_open_total":
          lb.failOpen = s.value;
          break;
        case "lb_retries_total":
          lb.retries += s.value;
          break;
        case "lb_retry_budget_exhausted_total":
          lb.budgetExhausted = s.value;
          break;
      }
    }
    return { t: t, backends: backends, lb: lb };
  }

  // increase is a counter's growth from a to b; a drop means the counter
  // restarted (lb restarted, or the backend was removed and added back).
  function increase(a, b) {
    const d = b - (a || 0);
    return d < 0 ? b : d;
  }

  // quantile estimates the q-quantile from cumulative buckets {le: count}, as
  // histogram_quantile does: linear within the bucket that holds the rank.
  // It returns null without observations; {value, over: true} when the rank
  // falls in the +Inf bucket (value is then the largest finite bound); and
  // {value, under: true} when it falls in the first bucket, where nothing
  // tells how far below its bound (value) the observations are.
  function quantile(q, buckets) {
    const les = Object.keys(buckets)
      .map((le) => ({ le: number(le), n: buckets[le] }))
      .sort((x, y) => x.le - y.le);
    if (les.length === 0) return null;
    const total = les[les.length - 1].n;
    if (!(total > 0)) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (const b of les) {
      if (b.n >= rank) {
        if (b.le === Infinity) return { value: lower, over: true };
        if (below === 0 && lower === 0) return { value: b.le, under: true };
        const inBucket = b.n - below;
        const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
        return { value: lower + (b.le - lower) * frac, over: false };
      }
      lower = b.le;
      below = b.n;
    }
    return { value: lower, over: true };
  }

  // Window keeps the samples of the last span ms, plus the newest older one
  // as the base the deltas are taken from.
  class Window {
    constructor(span) {
      this.span = span;
      this.snaps = [];
    }

    add(snap) {
      this.snaps.push(snap);
      while (this.snaps.length > 2 && snap.t - this.snaps[1].t >= this.span) this.snaps.shift();
    }

    clear() {
      this.snaps = [];
    }

    // view returns {seconds, lb: {rate, ...}, backends: {name: {rate, codes,
    // p50, p90, p99}}} over the window, or null before two samples.
    view() {
      if (this.snaps.length < 2) return null;
      const a = this.snaps[0];
      const b = this.snaps[this.snaps.length - 1];
      const secs = (b.t - a.t) / 1000;
      if (secs <= 0) return null;
      // lb's rate is the sum of the backends' increases, each of which allows
      // for its own counter restart (a backend removed and added back).
      let requests = 0;
      const out = {
        seconds: secs,
        lb: {
          rate: 0,
          failOpen: increase(a.lb.failOpen, b.lb.failOpen),
          retries: increase(a.lb.retries, b.lb.retries),
          budgetExhausted: increase(a.lb.budgetExhausted, b.lb.budgetExhausted),
        },
        backends: {},
      };
      for (const name of Object.keys(b.backends)) {
        const nb = b.backends[name];
        const ob = a.backends[name] || { codes: {}, buckets: {} };
        const codes = {};
        let total = 0;
        for (const code of Object.keys(nb.codes)) {
          const d = increase(ob.codes[code], nb.codes[code]);
          if (d > 0) codes[code] = d;
          total += d;
        }
        const buckets = {};
        for (const le of Object.keys(nb.buckets)) buckets[le] = increase(ob.buckets[le], nb.buckets[le]);
        requests += total;
        out.backends[name] = {
          rate: total / secs,
          codes: codes,
          p50: quantile(0.5, buckets),
          p90: quantile(0.9, buckets),
          p99: quantile(0.99, buckets),
        };
      }
      out.lb.rate = requests / secs;
      return out;
    }
  }

  return { parse: parse, snapshot: snapshot, quantile: quantile, Window: Window };
})();
