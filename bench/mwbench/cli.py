"""bench/run.py: what mailward costs a Dovecot server, measured side by
side with plain Dovecot (issues 7, 14). See bench/README.md."""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import time

import mwharness

from . import configs, envinfo, harness, lines, loads, mailgen, report
from .common import MODES, TARGETS, log


def parse_args(argv, doc):
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke check, about a minute")
    ap.add_argument("--long", action="store_true",
                    help="add the 100k-message listing mailbox")
    ap.add_argument("--out", default="/tmp/mailward-bench.json",
                    help="JSON result file (default %(default)s)")
    ap.add_argument("--svg", default=None,
                    help="SVG plot (default: --out with .svg)")
    ap.add_argument("--rounds", type=int, help="timed rounds per load")
    ap.add_argument("--loads", help="regex: run only matching loads")
    ap.add_argument("--configs", help="comma list of plain,mailward,"
                    "mailward+audit (default all available); plain2 adds "
                    "a second plain Dovecot (noise floor)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", metavar="DIR",
                    help="after the timed rounds, run each selected load "
                    "once more per configuration under 'perf record -a' "
                    "and write perf.data files and reports to DIR")
    ap.add_argument("--keep", action="store_true",
                    help="leave the sandbox directories in place")
    lines.add_argument(ap)
    return ap.parse_args(argv)


def params(args):
    """The run's parameters (common.MODES, changed by the options)."""
    p = dict(MODES["quick" if args.quick else "default"])
    if args.long:
        p["listing"] = sorted(set(p["listing"] + [100000]))
        p["load_cap"] = max(p["load_cap"], 300)
    if args.rounds:
        p["rounds"] = args.rounds
    if args.loads:
        rx = re.compile(args.loads)
        p["listing"] = [s for s in p["listing"]
                        if rx.search("list-pop3-%d" % s) or
                        rx.search("list-imap-%d" % s)]
    return p


def start_configs(cfgs, notes):
    """Starts every configuration's Dovecot; a mailward+audit that fails
    to start is left out with a note. Returns the started ones."""
    started = []
    for cfg in cfgs:
        try:
            cfg.start()
            started.append(cfg)
        except Exception as ex:  # noqa: BLE001
            if cfg.audit:
                notes.append("mailward+audit skipped: start failed: %s"
                             % str(ex).splitlines()[0])
                log("NOTE: " + notes[-1])
                cfg.sbx.stop(check=False)
                continue
            for c in started:
                c.sbx.stop(check=False)
            raise
    return started


def run_loads(cfgs, groups, p, gen, uidgid, args):
    """Fills the mailboxes, runs the selected loads; returns
    (mail info, state summary, results)."""
    mailinfo = harness.fill(cfgs, groups, p, gen, uidgid)
    state = harness.state_summary(harness.fill_listing(cfgs, p, gen,
                                                       uidgid))
    results = []
    own = [c.sbx.dir for c in cfgs]
    for load in loads.build_loads(p, groups, gen, uidgid, args.loads):
        act = envinfo.foreign_activity(own)
        results.append(harness.run_load(load, cfgs, p["rounds"],
                                        p["load_cap"]))
        after = envinfo.foreign_activity(own)
        results[-1]["activity_before"] = act
        results[-1]["activity_after"] = after
        if act["other_dovecot_masters"] or after["other_dovecot_masters"]:
            log("   note: other Dovecot instances were running on this "
                "host (%d before, %d after): expect noise" % (
                    act["other_dovecot_masters"],
                    after["other_dovecot_masters"]))
        if args.profile:
            harness.profile_load(load, cfgs, args.profile)
    return mailinfo, state, results


def stop_configs(started, keep):
    """Stops the sandboxes; returns the error/crash lines of their logs."""
    logcheck = {}
    for cfg in started:
        cfg.sbx.stop(check=False)
        text = cfg.sbx.read_log()
        bad = [l for l in text.splitlines() if mwharness.BAD_LOG.search(l)]
        errs = [l for l in text.splitlines() if " Error: " in l]
        logcheck[cfg.name] = {"crash_lines": bad[:5],
                              "error_lines": len(errs),
                              "error_samples": errs[:5],
                              "sandbox": cfg.sbx.dir}
        if not keep:
            cfg.sbx.cleanup()
    return logcheck


def final_notes(results, cfgs, logcheck, notes, fp_changed):
    for name, lc in logcheck.items():
        if lc["crash_lines"] or lc["error_lines"]:
            log("WARNING: %s Dovecot log: %d error lines, crashes: %s; e.g. "
                "%s" % (name, lc["error_lines"], lc["crash_lines"],
                        lc["error_samples"][:2]))
    for cfg in cfgs:
        if cfg.audit and results and not any(
                r["configs"].get(cfg.name, {}).get("audit_records")
                for r in results):
            notes.append("%s: the audit writer ran but no audit records "
                         "were written during the loads (plugin does not "
                         "emit events yet?)" % cfg.name)
    if fp_changed:
        notes.append("the build tree was rebuilt during the run; this run "
                     "measured the snapshot taken at its start")
    for n in notes:
        log("NOTE: " + n)


def main(doc):
    args = parse_args(sys.argv[1:], doc)
    if os.geteuid() != 0:
        sys.exit("run as root (the sandboxes start Dovecot)")
    args.svg = svg = args.svg or (os.path.splitext(args.out)[0] + ".svg")
    if lines.relaunch(args, "bench/run.py", sys.argv[1:],
                      outputs=("out", "svg"), dirs=("profile",)):
        return
    p = params(args)
    t_start = time.time()
    build_libs = mwharness.MODULES
    build_auditd = getattr(mwharness, "AUDITD", None)
    snapdir = configs.snapshot_build()
    fp0 = envinfo.build_fingerprint(mwharness.MODULES,
                                    getattr(mwharness, "AUDITD", None))
    gen = mailgen.MailGen(seed=args.seed)
    uidgid = mwharness.ensure_test_user()
    cfgs, groups, notes = configs.make_configs(p, args)
    for n in notes:
        log("NOTE: " + n)
    log("Dovecot %s; configurations: %s; mode %s%s; %d timed rounds per "
        "load" % (".".join(map(str, mwharness.DOVECOT_VERSION)),
                  ", ".join(c.name for c in cfgs),
                  "quick" if args.quick else "default",
                  " +long" if args.long else "", p["rounds"]))

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    started = []
    results, state, mailinfo = [], {}, {}
    try:
        started = start_configs(cfgs, notes)
        cfgs = started
        mailinfo, state, results = run_loads(cfgs, groups, p, gen, uidgid,
                                             args)
    finally:
        logcheck = stop_configs(started, args.keep)
        if not args.keep:
            shutil.rmtree(snapdir, ignore_errors=True)

    report.print_table(results, cfgs)
    verdicts = report.evaluate_targets(results, state, cfgs)
    report.print_extras(results, state, verdicts, cfgs)
    final_notes(results, cfgs, logcheck, notes,
                envinfo.build_fingerprint(build_libs, build_auditd) != fp0)
    doc = {
        "env": envinfo.env_info(),
        "mode": "quick" if args.quick else "default",
        "long": args.long, "params": p, "seed": args.seed,
        "configs": [c.name for c in cfgs], "notes": notes,
        "mail": mailinfo, "targets": TARGETS, "verdicts": verdicts,
        "state": state, "loads": results, "dovecot_logs": logcheck,
        "elapsed_s": time.time() - t_start, "build": fp0,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    wrote = report.write_svg(results, cfgs, svg)
    log("")
    log("results: %s%s   (elapsed %.0fs)" % (
        args.out, ", plot: " + svg if wrote else "",
        time.time() - t_start))
