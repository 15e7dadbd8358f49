"""Per-load summary of the timed rounds and the ratios to plain."""

import collections

from . import measure


def summarize(load, cfgs, phases, txn0, txn1):
    """The load's figures per configuration over its timed rounds
    (phases: {config: [phase result]}; txn0/txn1: LMDB txn id sums
    before and after), with ratios to "plain" when it ran."""
    out = {"name": load.name, "desc": load.desc, "kind": load.kind,
           "size": load.size, "concurrency": load.concurrency,
           "configs": {}}
    for cfg in cfgs:
        s = config_summary(phases[cfg.name])
        n = s["sessions"]
        scpu = s.pop("_server_cpu")
        if load.kind == "listing" and load.size and n:
            s["server_cpu_us_per_listed_message"] = \
                scpu * 1e6 / n / load.size
        if txn0.get(cfg.name) is not None and n:
            s["lmdb_write_txns_per_session"] = \
                (txn1[cfg.name] - txn0[cfg.name]) / n
        if cfg.audit:
            s.update(audit_summary(phases[cfg.name], s["wall_s"], n))
        out["configs"][cfg.name] = s
    base = out["configs"].get("plain")
    if base:
        for cfg in cfgs:
            if cfg.name != "plain":
                add_ratios(out["configs"][cfg.name], base,
                           phases[cfg.name], phases["plain"])
    return out


def config_summary(ph):
    """Totals, rates, latencies and CPU of one configuration's phases."""
    wall = sum(x["wall"] for x in ph)
    n = sum(x["sessions"] for x in ph)
    msgs = sum(x["messages"] for x in ph)
    nbytes = sum(x["bytes"] for x in ph)
    lat = [v for x in ph for v in x["latencies"]]
    scpu = sum(x["server_cpu"] for x in ph)
    ccpu = sum(x["client_cpu"] for x in ph)
    busy = [x["system_busy"] for x in ph if x["system_busy"] is not None]
    return {
        "rounds": len(ph), "sessions": n, "wall_s": wall,
        "errors": sum(x["errors"] for x in ph),
        "skipped": sum(x["skipped"] for x in ph),
        "error_samples": [e for x in ph for e in x["error_samples"]][:5],
        "sessions_per_s": n / wall if wall else None,
        "messages_per_s": msgs / wall if wall else None,
        "mb_per_s": nbytes / 1e6 / wall if wall else None,
        "messages": msgs, "bytes": nbytes,
        "latency_p50_ms": _ms(measure.percentile(lat, 50)),
        "latency_p99_ms": _ms(measure.percentile(lat, 99)),
        "server_cpu_ms_per_session": scpu * 1000 / n if n else None,
        "client_cpu_ms_per_session": ccpu * 1000 / n if n else None,
        "system_busy": sum(busy) / len(busy) if busy else None,
        "quiescent": all(x["quiescent"] for x in ph),
        "round_sessions_per_s": [x["sessions"] / x["wall"]
                                 if x["wall"] else None for x in ph],
        "round_latency_p50_ms": [_ms(measure.median(x["latencies"]))
                                 for x in ph],
        "_server_cpu": scpu,
    }


def audit_summary(ph, wall, n):
    """Audit records, bytes and event mix written during the phases."""
    recs = sum(x.get("audit_records", 0) for x in ph)
    ab = sum(x.get("audit_bytes", 0) for x in ph)
    ev = collections.Counter()
    for x in ph:
        ev.update(x.get("audit_events", {}))
    return {
        "audit_records": recs, "audit_bytes": ab,
        "audit_bytes_per_record": ab / recs if recs else None,
        "audit_records_per_s": recs / wall if wall else None,
        "audit_records_per_session": recs / n if n else None,
        "audit_events": dict(ev)}


def add_ratios(s, base, cph, bph):
    """Adds to s (a configuration's summary) its ratios to base (plain's),
    overall and per round (cph, bph: the two configurations' phases)."""
    s["ratio_throughput"] = _div(s["sessions_per_s"],
                                 base["sessions_per_s"])
    s["ratio_server_cpu"] = _div(s["server_cpu_ms_per_session"],
                                 base["server_cpu_ms_per_session"])
    per = []
    for a, b in zip(cph, bph):
        if a["wall"] and b["wall"] and b["sessions"]:
            per.append((a["sessions"] / a["wall"]) /
                       (b["sessions"] / b["wall"]))
    s["round_ratios"] = per
    s["ratio_round_median"] = measure.median(per)
    # server CPU per session, paired per round (machine load drifts
    # between rounds; a configuration's phase and plain's of the same
    # round saw about the same)
    cpu = []
    for a, b in zip(cph, bph):
        if a["sessions"] and b["sessions"] and b["server_cpu"] > 0:
            cpu.append((a["server_cpu"] / a["sessions"]) /
                       (b["server_cpu"] / b["sessions"]))
    s["round_cpu_ratios"] = cpu
    s["ratio_cpu_round_median"] = measure.median(cpu)
    s["ratio_round_min"] = min(per) if per else None
    s["ratio_round_max"] = max(per) if per else None
    if s["latency_p50_ms"] is not None and \
            base["latency_p50_ms"] is not None:
        s["latency_p50_added_ms"] = (s["latency_p50_ms"] -
                                     base["latency_p50_ms"])
        # median over rounds of the paired per-round difference
        d = [a - b for a, b in zip(s["round_latency_p50_ms"],
                                   base["round_latency_p50_ms"])
             if a is not None and b is not None]
        s["latency_p50_added_ms_round_median"] = measure.median(d)
    if s["server_cpu_ms_per_session"] is not None:
        s["server_cpu_added_ms_per_session"] = (
            s["server_cpu_ms_per_session"] -
            base["server_cpu_ms_per_session"])


def _ms(v):
    return None if v is None else v * 1000


def _div(a, b):
    return a / b if a is not None and b else None

