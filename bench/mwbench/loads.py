"""The loads: what each session does, against which users."""

import re

from . import clients, mailgen
from .common import PW

class Load:
    def __init__(self, name, desc, make_tasks, concurrency, refill=None,
                 users=(), kind="main", size=None, txn_users=()):
        self.name = name
        self.desc = desc
        self.make_tasks = make_tasks     # (cfg) -> [callable]
        self.concurrency = concurrency
        self.refill = refill             # (cfg) -> None, untimed
        self.users = users
        self.kind = kind
        self.size = size
        self.txn_users = txn_users


def build_loads(p, groups, gen, uidgid, sel):
    """The loads of parameters p (common.MODES), users by group, whose
    name matches the regex sel (all when empty)."""
    loads = (session_loads(p, groups, gen, uidgid) +
             login_loads(p, groups) + listing_loads(p))
    if sel:
        rx = re.compile(sel)
        loads = [l for l in loads if rx.search(l.name)]
    return loads


def session_loads(p, groups, gen, uidgid):
    """Full POP3 and IMAP sessions (retrieve, expunge)."""
    C = p["concurrency"]
    M = p["msgs"]
    loads = []

    def refill_full(prefix):
        def f(cfg):
            for i, u in enumerate(groups[prefix]):
                have = mailgen.maildir_count(cfg.sbx, u)
                if have < M:
                    msgs = gen.mailbox(i, M)[have:]
                    mailgen.deliver(cfg.sbx, u, msgs, *uidgid)
        return f

    def pop3_tasks(prefix, dele):
        def mk(cfg):
            port = cfg.sbx.pop3_port
            return [(lambda u=u: clients.pop3_session(port, u, PW, dele=dele))
                    for u in groups[prefix]]
        return mk

    loads.append(Load(
        "pop3-client", "POP3 login STAT UIDL RETR-all QUIT, policy client, "
        "%d users x %d msgs, %d clients" % (len(groups["pc"]), M, C),
        pop3_tasks("pc", False), C, users=groups["pc"],
        txn_users=groups["pc"]))
    loads.append(Load(
        "pop3-leave", "same, policy leave-on-server (per-device view)",
        pop3_tasks("pl", False), C, users=groups["pl"],
        txn_users=groups["pl"]))
    loads.append(Load(
        "pop3-expunge", "RETR+DELE all, QUIT; policy expunge-after-"
        "retrieval (plain: client DELE); refilled between rounds",
        pop3_tasks("pe", True), C, refill=refill_full("pe"),
        users=groups["pe"], txn_users=groups["pe"]))

    def imap_tasks(cfg):
        port = cfg.sbx.imap_port
        return [(lambda u=u: clients.imap_session(port, u, PW))
                for u in groups["im"]]
    loads.append(Load(
        "imap", "IMAP LOGIN ID SELECT, FETCH headers, FETCH bodies, "
        "STORE \\Deleted x2, EXPUNGE, LOGOUT; topped up between rounds",
        imap_tasks, C, refill=refill_full("im"), users=groups["im"],
        txn_users=groups["im"]))
    loads.append(mix_load(p, groups, gen))
    return loads


def mix_load(p, groups, gen):
    """imaptest's default random IMAP mix, the project's own version
    (clients.imap_mix_session): 10 clients, two sessions per user."""
    users = groups["mx"]
    msg = next(iter(gen.small(1))).replace(b"\n", b"\r\n")
    ops = p.get("mix_ops", 20)

    def mk(cfg):
        port = cfg.sbx.imap_port
        return [(lambda u=u, i=i: clients.imap_mix_session(
            port, u, PW, 1000 + i, msg, ops))
            for i, u in enumerate(users * 2)]
    return Load("imap-mix", "imaptest-style random IMAP mix (FETCH, "
                "STORE, SEARCH, STATUS, NOOP, APPEND, EXPUNGE), %d "
                "commands per session, 10 clients" % ops, mk, 10,
                users=users, txn_users=users)


def login_loads(p, groups):
    """Session setup only: one client, and storms of concurrent logins."""
    loads = []

    def login_tasks(proto, n):
        def mk(cfg):
            if proto == "pop3":
                port, fn, us = cfg.sbx.pop3_port, clients.pop3_login, groups["pc"]
            else:
                port, fn, us = cfg.sbx.imap_port, clients.imap_login, groups["im"]
            return [(lambda u=us[i % len(us)]: fn(port, u, PW))
                    for i in range(n)]
        return mk

    ls = p["login_sessions"]
    ss = p["storm_sessions"]
    loads.append(Load("login-pop3", "POP3 USER PASS QUIT, one client "
                      "(session setup cost)", login_tasks("pop3", ls), 1,
                      kind="login"))
    loads.append(Load("login-imap", "IMAP LOGIN LOGOUT, one client",
                      login_tasks("imap", ls), 1, kind="login"))
    loads.append(Load("storm-pop3", "POP3 login storm, %d clients"
                      % p["storm_conc"], login_tasks("pop3", ss),
                      p["storm_conc"], kind="storm"))
    loads.append(Load("storm-imap", "IMAP login storm, %d clients"
                      % p["storm_conc"], login_tasks("imap", ss),
                      p["storm_conc"], kind="storm"))
    return loads


def listing_loads(p):
    """STAT/UIDL/LIST and FETCH of the listing mailboxes."""
    loads = []
    for size in p["listing"]:
        u = "ls%d" % size

        def mk_pop(cfg, u=u):
            port = cfg.sbx.pop3_port
            return [(lambda: clients.pop3_list_session(port, u, "deva-secret"))
                    for _ in range(p["list_sessions"])]

        def mk_imap(cfg, u=u):
            port = cfg.sbx.imap_port
            return [(lambda: clients.imap_list_session(port, u, "deva-secret"))
                    for _ in range(p["list_sessions"])]
        loads.append(Load("list-pop3-%d" % size, "POP3 STAT UIDL LIST of "
                          "%d msgs, device with state for all" % size,
                          mk_pop, 1, kind="listing", size=size, users=[u],
                          txn_users=[u]))
        loads.append(Load("list-imap-%d" % size, "IMAP SELECT, UID FETCH "
                          "1:* (FLAGS RFC822.SIZE) of %d msgs" % size,
                          mk_imap, 1, kind="listing", size=size, users=[u],
                          txn_users=[u]))
    return loads

