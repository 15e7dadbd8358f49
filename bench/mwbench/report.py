"""Output: the table, the verdicts against the targets, the extra
figures (state, transactions, listing, audit) and the SVG."""

import json

from . import svg
from .common import TARGETS, THROUGHPUT_LOADS, log

def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def print_table(results, cfgs):
    hdr = ("%-16s %-15s %5s %8s %8s %7s %8s %8s %8s %7s %22s %12s"
           % ("load", "config", "sess", "sess/s", "msg/s", "MB/s", "p50 ms",
              "p99 ms", "cpu ms/s", "+cpu ms", "ratio med [rnd range]",
              "cpu x (med)"))
    log("")
    log(hdr)
    log("-" * len(hdr))
    for r in results:
        for cfg in cfgs:
            s = r["configs"].get(cfg.name)
            if not s:
                continue
            ratio = cpu = ""
            if "ratio_throughput" in s:
                ratio = "%.3f %s [%s-%s]" % (
                    s["ratio_throughput"] or 0,
                    fmt(s["ratio_round_median"], "%.3f"),
                    fmt(s["ratio_round_min"], "%.2f"),
                    fmt(s["ratio_round_max"], "%.2f"))
                cpu = "%s (%s)" % (fmt(s.get("ratio_server_cpu"), "%.3f"),
                                   fmt(s.get("ratio_cpu_round_median"),
                                       "%.3f"))
            flag = ""
            if s["errors"] or s["skipped"]:
                flag = " !err=%d skip=%d" % (s["errors"], s["skipped"])
            log("%-16s %-15s %5d %8s %8s %7s %8s %8s %8s %7s %22s %12s%s" % (
                r["name"], cfg.name, s["sessions"],
                fmt(s["sessions_per_s"]), fmt(s["messages_per_s"], "%.0f"),
                fmt(s["mb_per_s"]), fmt(s["latency_p50_ms"], "%.2f"),
                fmt(s["latency_p99_ms"], "%.2f"),
                fmt(s["server_cpu_ms_per_session"], "%.2f"),
                fmt(s.get("server_cpu_added_ms_per_session"), "%+.2f"),
                ratio, cpu, flag))
    log("")
    log("sess/s msg/s MB/s: per configuration over all its timed rounds; "
        "p50/p99: session latency (connect..close); cpu ms/s: server CPU "
        "(master + all descendants) per session; +cpu ms: added vs plain; "
        "ratio: sessions/s vs plain over all rounds, the median of the "
        "per-round ratios [their min-max]; cpu x: server CPU per session "
        "vs plain over all rounds (median of the per-round ratios).")


def evaluate_targets(results, state, cfgs):
    verdicts = []
    by = {r["name"]: r for r in results}

    def add(what, value, target, ok, unit=""):
        verdicts.append({"target": what, "value": value, "limit": target,
                         "met": ok})

    for cname, key in (("mailward", "throughput_mailward"),
                       ("mailward+audit", "throughput_audit")):
        if cname not in [c.name for c in cfgs]:
            continue
        for ln in THROUGHPUT_LOADS:
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("ratio_throughput") is not None:
                # the measure: the median of interleaved rounds
                v = s.get("ratio_round_median")
                what = "median of per-round ratios"
                if v is None:
                    v, what = s["ratio_throughput"], "all rounds"
                add("%s %s throughput ratio >= %.2f (%s)" % (
                    cname, ln, TARGETS[key], what), round(v, 3),
                    TARGETS[key], v >= TARGETS[key])
    for cname in [c.name for c in cfgs if c.mailward]:
        for ln in ("login-pop3", "login-imap"):
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("latency_p50_added_ms") is not None:
                add("%s %s session setup added <= %.1f ms (median)"
                    % (cname, ln, TARGETS["setup_added_ms"]),
                    round(s["latency_p50_added_ms"], 3),
                    TARGETS["setup_added_ms"],
                    s["latency_p50_added_ms"] <= TARGETS["setup_added_ms"])
    for cname, st in state.items():
        sizes = sorted(st["by_size"])
        if not sizes:
            continue
        big = st["by_size"][sizes[-1]]
        add("%s LMDB bytes per device-message at %d msgs x 2 devices <= %d"
            % (cname, sizes[-1], TARGETS["state_bytes_per_device_message"]),
            round(big["bytes_per_record"], 1),
            TARGETS["state_bytes_per_device_message"],
            big["bytes_per_record"] <=
            TARGETS["state_bytes_per_device_message"])
        if st["marginal_bytes_per_record"] is not None:
            m = st["marginal_bytes_per_record"]
            add("%s LMDB marginal bytes per device-message <= %d"
                % (cname, TARGETS["state_bytes_per_device_message"]),
                round(m, 1), TARGETS["state_bytes_per_device_message"],
                m <= TARGETS["state_bytes_per_device_message"])
    for cname in [c.name for c in cfgs if c.mailward]:
        for ln in THROUGHPUT_LOADS + tuple(
                r["name"] for r in results if r["kind"] == "listing"):
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("lmdb_write_txns_per_session") is not None:
                v = s["lmdb_write_txns_per_session"]
                limit = 1.0 if ln.startswith(("pop3", "list-pop3")) else None
                if limit is None:
                    continue
                add("%s %s LMDB write txns per session <= 1 (not per "
                    "message)" % (cname, ln), round(v, 2), limit,
                    v <= limit + 1e-9)
    return verdicts


def print_extras(results, state, verdicts, cfgs):
    log("")
    log("LMDB state (2 devices retrieved every message of the listing "
        "mailbox):")
    for cname, st in state.items():
        for size, d in sorted(st["by_size"].items()):
            log("  %-15s %7d msgs: %7d records, %9d bytes used (%d file), "
                "%s B/device-message" % (cname, size, d["records"],
                                         d["used_bytes"], d["file_bytes"],
                                         fmt(d["bytes_per_record"])))
        log("  %-15s marginal: %s B/device-message" % (
            cname, fmt(st["marginal_bytes_per_record"])))
    log("")
    log("LMDB write transactions per session (mailward configurations):")
    for r in results:
        row = []
        for cfg in cfgs:
            s = r["configs"].get(cfg.name, {})
            if s.get("lmdb_write_txns_per_session") is not None:
                row.append("%s %.2f" % (cfg.name,
                                        s["lmdb_write_txns_per_session"]))
        if row:
            log("  %-16s %s" % (r["name"], ", ".join(row)))
    lst = [r for r in results if r["kind"] == "listing"]
    if lst:
        log("")
        log("Listing scaling, server CPU per listed message (us):")
        for r in lst:
            log("  %-16s %s" % (r["name"], ", ".join(
                "%s %s" % (c.name, fmt(r["configs"][c.name].get(
                    "server_cpu_us_per_listed_message"), "%.2f"))
                for c in cfgs if c.name in r["configs"])))
    if any(c.audit for c in cfgs):
        log("")
        log("Audit log (mailward+audit):")
        for r in results:
            for cfg in cfgs:
                s = r["configs"].get(cfg.name, {})
                if cfg.audit and s.get("audit_records") is not None:
                    log("  %-16s %6d records, %s B/record, %s records/s, "
                        "%s records/session  %s" % (
                            r["name"], s["audit_records"],
                            fmt(s["audit_bytes_per_record"], "%.0f"),
                            fmt(s["audit_records_per_s"], "%.0f"),
                            fmt(s["audit_records_per_session"], "%.1f"),
                            json.dumps(s["audit_events"], sort_keys=True)))
    log("")
    log("Targets:")
    for v in verdicts:
        log("  [%s] %s: %s" % ("met " if v["met"] else "MISS", v["target"],
                               v["value"]))


def write_svg(results, cfgs, path):
    series = {}
    for r in results:
        if r["kind"] != "listing":
            continue
        proto = r["name"].split("-")[1]
        for cfg in cfgs:
            s = r["configs"].get(cfg.name, {})
            if s.get("ratio_throughput") is None:
                continue
            series.setdefault("%s %s" % (proto.upper(), cfg.name), []) \
                .append((r["size"], s["ratio_throughput"]))
    for k in series:
        series[k].sort()
    targets = {"0.97 target (mailward)": TARGETS["throughput_mailward"]}
    if any(c.audit for c in cfgs):
        targets["0.90 target (audit)"] = TARGETS["throughput_audit"]
    return svg.svg_plot(series, targets,
                       "mailward / plain Dovecot: listing sessions/s vs "
                       "mailbox size", "messages in mailbox (log)",
                       "throughput ratio (sessions/s)", path)

