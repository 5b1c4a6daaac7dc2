#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Parsing and reporting for bench/*/run scripts (Python standard library only).

  report.py wrk OUTPUT_FILE key=value...     one JSON line: wrk figures + keys
  report.py target RUNS.jsonl ENDPOINT [SERVER]
                                              half the slowest server's median peak req/s
                                              (or half SERVER's, when given)
  report.py summary RUNS.jsonl META.tsv OUT.json [--config CONFIG.json]
                                              print the table, write the JSON

A run record carries cpu_jiffies (non-idle jiffies of the servers' CPU over the
measured run), proc_jiffies (utime + stime of the server's processes) and
clk_tck; CPU microseconds per request = jiffies * 1e6 / clk_tck / requests.
Any other NAME_jiffies key (for example proxy_jiffies) likewise gives
NAME_us_per_req.

Config (CONFIG.json, all keys optional): subject, endpoint_labels,
header_keys, goals, idle_rss_goal_kib, extra_columns, fixed_title, peak_title,
unit (what a request is called in the column titles, default "req"). A goal is
{name, phase, peer, key, max|min} giving the per-round ratio subject/peer on
every endpoint; optional: "subject" (another server than the config's),
"endpoints" (only these), "op": "diff" (subject - peer instead of a ratio,
shown in "unit"), "subject_endpoint" + "peer_endpoint" (one comparison
across two endpoints, e.g. one server on two routes; "label" names it),
"op": "value" (no peer: the median over rounds of the subject's own figure,
for an absolute goal such as p50 <= 100 us).
"""
import json
import re
import statistics
import sys

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _num(text):
    """'12.5ms' -> 12500.0 (microseconds)."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError("bad wrk time: %r" % text)
    return float(m.group(1)) * UNITS_US[m.group(2)]


def _value(text):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_wrk(text):
    """Figures from the output of `wrk --latency`."""
    out = {"non2xx": 0, "socket_errors": 0}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if not m:
        raise ValueError("no 'requests in' line in wrk output")
    out["requests"] = int(m.group(1))
    out["elapsed_s"] = float(m.group(2)) * UNITS_US[m.group(3)] / 1e6
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else out["requests"] / out["elapsed_s"]
    for pct, key in (("50", "p50_us"), ("75", "p75_us"), ("90", "p90_us"), ("99", "p99_us")):
        m = re.search(r"^\s*%s%%\s+(\S+)" % pct, text, re.M)
        out[key] = _num(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
        out["socket_errors_detail"] = dict(zip(("connect", "read", "write", "timeout"),
                                               (int(g) for g in m.groups())))
    return out


def per_request_us(jiffies, clk_tck, requests):
    if not requests:
        return None
    return jiffies * 1e6 / clk_tck / requests


def cmd_wrk(args):
    with open(args[0]) as f:
        rec = parse_wrk(f.read())
    for kv in args[1:]:
        k, _, v = kv.partition("=")
        if v != "":
            rec[k] = _value(v)
    tck = rec.get("clk_tck", 100)
    if "cpu_jiffies" in rec:
        rec["cpu_us_per_req"] = per_request_us(rec["cpu_jiffies"], tck, rec["requests"])
    if "proc_jiffies" in rec:
        rec["proc_us_per_req"] = per_request_us(rec["proc_jiffies"], tck, rec["requests"])
    for k in list(rec):
        if k.endswith("_jiffies") and k not in ("cpu_jiffies", "proc_jiffies"):
            rec[k[:-len("_jiffies")] + "_us_per_req"] = per_request_us(
                rec[k], tck, rec["requests"])
    print(json.dumps(rec, sort_keys=True))


def load_runs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cmd_target(args):
    runs, endpoint = load_runs(args[0]), args[1]
    server = args[2] if len(args) > 2 else None
    meds = {}
    for r in runs:
        if r["endpoint"] == endpoint and r["phase"] == "peak":
            if server is None or r["server"] == server:
                meds.setdefault(r["server"], []).append(r["rps"])
    if not meds:
        sys.exit("no peak runs for endpoint %r%s" % (endpoint, " server %r" % server
                                                          if server else ""))
    slowest = min(median(v) for v in meds.values())
    print(int(slowest / 2))


# ---------------------------------------------------------------- summary


def fmt(v, spec="{:.1f}", none="-"):
    return none if v is None else spec.format(v)


def fmt_lat(us):
    if us is None:
        return "-"
    if us >= 1e6:
        return "%.2fs" % (us / 1e6)
    if us >= 1e3:
        return "%.2fms" % (us / 1e3)
    return "%.0fus" % us


def table(rows, header):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = []
    for i, row in enumerate([header] + rows):
        cells = []
        for j, (cell, w) in enumerate(zip(row, widths)):
            cells.append(str(cell).ljust(w) if j < 2 else str(cell).rjust(w))
        lines.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def group(runs, phase):
    """{(endpoint, server): [run, ...]} in first-seen order."""
    out = {}
    for r in runs:
        if r["phase"] == phase:
            out.setdefault((r["endpoint"], r["server"]), []).append(r)
    return out


def summarize(rs, extra_keys=()):
    out = {
        "rounds": len(rs),
        "rps": median([r["rps"] for r in rs]),
        "p50_us": median([r.get("p50_us") for r in rs]),
        "p99_us": median([r.get("p99_us") for r in rs]),
        "cpu_us_per_req": median([r.get("cpu_us_per_req") for r in rs]),
        "proc_us_per_req": median([r.get("proc_us_per_req") for r in rs]),
        "connections": rs[0].get("connections"),
        "offered_rps": rs[0].get("offered_rps"),
        "errors": sum(r["non2xx"] + r["socket_errors"] for r in rs),
    }
    for k in extra_keys:
        out[k] = median([r.get(k) for r in rs])
    return out


def pairwise(runs, phase, endpoint, a, b, key, endpoint_b=None, op="ratio"):
    """Per-round ratios a/b (op "diff": differences a - b) of one figure, a on
    endpoint and b on endpoint_b (default the same); returns
    {median, min, max, per_round} or None."""
    endpoint_b = endpoint if endpoint_b is None else endpoint_b
    by_round = {}
    for r in runs:
        if r["phase"] != phase:
            continue
        if r["endpoint"] == endpoint and r["server"] == a:
            by_round.setdefault(r["round"], {})["a"] = r.get(key)
        if r["endpoint"] == endpoint_b and r["server"] == b:
            by_round.setdefault(r["round"], {})["b"] = r.get(key)
    ratios = []
    for rnd in sorted(by_round):
        x, y = by_round[rnd].get("a"), by_round[rnd].get("b")
        if op == "diff":
            if x is not None and y is not None:
                ratios.append(x - y)
        elif x is not None and y:
            ratios.append(x / y)
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "per_round": ratios}


def values(runs, phase, endpoint, server, key):
    """The per-round figures of one server (goal op "value"); same shape as pairwise."""
    by_round = {}
    for r in runs:
        if (r["phase"] == phase and r["endpoint"] == endpoint and r["server"] == server
                and r.get(key) is not None):
            by_round[r["round"]] = r[key]
    vals = [by_round[k] for k in sorted(by_round)]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "per_round": vals}


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            k, _, v = line.partition("\t")
            meta[k] = _value(v)
    return meta


def cmd_summary(args):
    runs = load_runs(args[0])
    meta = read_meta(args[1])
    out_path = args[2]
    cfg = {}
    if len(args) > 4 and args[3] == "--config":
        with open(args[4]) as f:
            cfg = json.load(f)
    subject = cfg.get("subject", "catalog")
    goals = cfg.get("goals", [])
    endpoints_label = cfg.get("endpoint_labels", {})
    extra = cfg.get("extra_columns", [])
    extra_keys = [c["key"] for c in extra]
    unit = cfg.get("unit", "req")

    p = print
    p("")
    p("== %s ==" % meta.get("title", "benchmark"))
    for key in cfg.get("header_keys", []):
        if key in meta:
            p("%-10s %s" % (key + ":", meta[key]))
    p("")

    result = {"meta": meta, "config": cfg, "peak": [], "fixed": [], "ratios": [],
              "memory": {}, "runs": runs}

    peak = group(runs, "peak")
    rows = []
    for (ep, srv), rs in peak.items():
        s = summarize(rs, extra_keys)
        s.update(endpoint=ep, server=srv)
        result["peak"].append(s)
        rows.append([endpoints_label.get(ep, ep), srv, fmt(s["rps"], "{:.0f}"),
                     fmt_lat(s["p50_us"]), fmt_lat(s["p99_us"]),
                     fmt(s["cpu_us_per_req"], "{:.2f}"), fmt(s["proc_us_per_req"], "{:.2f}")]
                    + [fmt(s[c["key"]], c.get("fmt", "{:.2f}")) for c in extra]
                    + [str(s["errors"])])
    if rows:
        if "peak_title" in cfg:
            p(cfg["peak_title"] + ", median of %s rounds" % meta.get("rounds", "?"))
        else:
            p("Peak, closed loop (%s connections), median of %s rounds; p50/p99 at saturation"
              % (meta.get("connections", "?"), meta.get("rounds", "?")))
            p("measure queueing only, compare latency in the fixed-load table below")
        p(table(rows, ["endpoint", "server", "%s/s" % unit, "p50", "p99",
                       "CPU0 us/%s" % unit, "proc us/%s" % unit]
                + [c["title"] for c in extra] + ["errors"]))
        p("")

    fixed = group(runs, "fixed")
    rows = []
    for (ep, srv), rs in fixed.items():
        s = summarize(rs, extra_keys)
        s.update(endpoint=ep, server=srv)
        result["fixed"].append(s)
        rows.append([endpoints_label.get(ep, ep), srv, fmt(s["offered_rps"], "{:.0f}"),
                     fmt(s["rps"], "{:.0f}"), fmt_lat(s["p50_us"]), fmt_lat(s["p99_us"]),
                     fmt(s["cpu_us_per_req"], "{:.2f}"), str(s["connections"]),
                     str(s["errors"])])
    if rows:
        p(cfg.get("fixed_title", "Fixed load, half the slowest server's peak (each connection"
                  " waits a random think time\nbetween requests)")
          + ", median of %s rounds" % meta.get("rounds", "?"))
        for k in sorted(meta):
            if k.startswith("fixed_"):
                p("  %s: %s" % (endpoints_label.get(k[6:], k[6:]), meta[k]))
        p(table(rows, ["endpoint", "server", "target/s", "%s/s" % unit, "p50", "p99",
                       "CPU0 us/%s" % unit, "conns", "errors"]))
        p("")

    rows = []
    endpoints = []
    for (ep, _srv) in list(peak) + list(fixed):
        if ep not in endpoints:
            endpoints.append(ep)

    def goal_row(g, label, ep_a, ep_b, key):
        op = g.get("op", "ratio")
        if op == "value":
            r = values(runs, g["phase"], ep_a, g.get("subject", subject), g["key"])
        else:
            r = pairwise(runs, g["phase"], ep_a, g.get("subject", subject), g["peer"], g["key"],
                         endpoint_b=ep_b, op=op)
        if r is None:
            return
        unit = g.get("unit", "")
        verdict = ""
        if "max" in g:
            verdict = "PASS" if r["median"] <= g["max"] else "FAIL"
            goal_txt = "<= %s%s" % (g["max"], unit)
        elif "min" in g:
            verdict = "PASS" if r["median"] >= g["min"] else "FAIL"
            goal_txt = ">= %s%s" % (g["min"], unit)
        else:
            goal_txt = "(info)"
        r.update(endpoint=key, name=g["name"], goal=goal_txt, verdict=verdict or None)
        if op != "ratio":
            r.update(op=op, unit=unit)
        if ep_b != ep_a and op != "value":
            r.update(subject=g.get("subject", subject), peer=g["peer"],
                     subject_endpoint=ep_a, peer_endpoint=ep_b)
        result["ratios"].append(r)
        if op == "diff":
            med = "%+.0f%s" % (r["median"], unit)
            rng = "%+.0f..%+.0f%s" % (r["min"], r["max"], unit)
        elif op == "value":
            med = "%.0f%s" % (r["median"], unit)
            rng = "%.0f-%.0f%s" % (r["min"], r["max"], unit)
        else:
            med = "%.2f" % r["median"]
            rng = "%.2f-%.2f" % (r["min"], r["max"])
        rows.append([label, g["name"], med, rng, goal_txt, verdict])

    for ep in endpoints:
        for g in goals:
            if "subject_endpoint" in g or ("endpoints" in g and ep not in g["endpoints"]):
                continue
            goal_row(g, endpoints_label.get(ep, ep), ep, ep, ep)
    for g in goals:
        if "subject_endpoint" in g:
            a, b = g["subject_endpoint"], g["peer_endpoint"]
            label = g.get("label", "%s vs %s" % (a, b))
            goal_row(g, label, a, b, label)
    if rows:
        if any(g.get("op") == "diff" for g in goals):
            p("Ratios: median of the per-round pairwise ratios, or of the differences (signed,"
              " in the unit\nshown); range over rounds")
        elif any(g.get("op") == "value" for g in goals):
            p("Ratios: median of the per-round pairwise ratios, or of the figure itself (rows"
              " with a unit);\nrange over rounds")
        else:
            p("Ratios: median of the per-round pairwise ratios (range over rounds)")
        p(table(rows, ["endpoint", "ratio", "median", "range", "goal", ""]))
        p("")

    mem = {k[4:]: v for k, v in meta.items() if k.startswith("rss_")}
    if mem:
        result["memory"] = mem
        mib = lambda kib: "%.2f MiB" % (kib / 1024.0)
        idle = mem.get("idle_kib")
        goal = cfg.get("idle_rss_goal_kib")
        verdict = ""
        if goal and idle:
            verdict = "  goal <= %s  %s" % (mib(goal), "PASS" if idle <= goal else "FAIL")
            result["memory"]["idle_goal_kib"] = goal
            result["memory"]["idle_verdict"] = "PASS" if idle <= goal else "FAIL"
        p("Memory (%s VmRSS)" % subject)
        p("  idle after start      %s%s" % (mib(idle or 0), verdict))
        if "loaded_kib" in mem:
            p("  peak under load       %s (sampled every 0.2 s)" % mib(mem["loaded_kib"]))
        if "hwm_kib" in mem:
            p("  VmHWM                 %s (includes start-up and seeding)" % mib(mem["hwm_kib"]))
        if "idle_after_kib" in mem:
            p("  idle after the runs   %s" % mib(mem["idle_after_kib"]))
        p("")

    errors = sum(r["non2xx"] + r["socket_errors"] for r in runs)
    warnings = [v for k, v in sorted(meta.items()) if k.startswith("warning")]
    # On a quiet machine the servers' own CPU time (proc) and CPU 0's busy
    # time agree within a few percent; a larger gap is other work on CPU 0.
    noisy = [r for r in runs if "proc_jiffies" in r and
             r["cpu_jiffies"] > 1.15 * r["proc_jiffies"] + 5]
    result["noisy_runs"] = [{k: r[k] for k in ("phase", "endpoint", "server", "round",
                                               "cpu_jiffies", "proc_jiffies")} for r in noisy]
    if noisy:
        warnings.append(
            "%d of %d runs had other work on CPU 0 (CPU 0 busy time > 1.15 x the server's "
            "own CPU time): %s. Re-run on a quiet machine; the proc us/req column is "
            "the less disturbed figure" % (len(noisy), len(runs), ", ".join(
                "%s/%s/%s#%s" % (r["phase"], r["endpoint"], r["server"], r["round"])
                for r in noisy[:8]) + (" ..." if len(noisy) > 8 else "")))
    if errors:
        warnings.append("%d non-2xx responses or socket errors: the figures of the rows "
                        "with errors are not valid" % errors)
    for w in warnings:
        p("WARNING: %s" % w)
    result["warnings"] = warnings

    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    p("results: %s" % out_path)
    return 2 if errors else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "wrk":
        cmd_wrk(args)
    elif cmd == "target":
        cmd_target(args)
    elif cmd == "summary":
        return cmd_summary(args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
