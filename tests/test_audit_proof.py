"""Merkle proofs for single records (docs/audit-log.md §6.1, §12): a log
written by the real writer (mailward-auditd in a sandbox Dovecot), a
bundle for one user made by `mailward-audit prove`, checked by
`verify-proof` with the public key alone; every tamper case fails naming
what failed; `verify --consistency` proves that today's log extends a
checkpoint an auditor kept, and catches truncation and a rewritten
history (even one re-signed with the stolen checkpoint key) without the
MAC key. The Merkle hashing is recomputed here with hashlib, from the
spec, independently of the C code."""

import hashlib
import json
import os
import shutil
import signal
import subprocess

import mwharness
from test_audit_writer import AuditConn, body, wait_records, wait_writer

CLI = mwharness.AUDIT_CLI


def run(*args):
    r = subprocess.run([CLI] + list(args), capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stdout + r.stderr


def log_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def leaf(line):
    return hashlib.sha256(b"\x00" + line).digest()


def node(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def mth(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def send(sbx, users, start_uid, n):
    c = AuditConn(sbx.audit_socket_path)
    for i in range(n):
        c.event(body(users[i % len(users)], uid=start_uid + i))
    assert c.flush()[0] == ["OK"]
    c.close()


def read_bundle(path):
    with open(path, "rb") as f:
        return [json.loads(l) for l in f.read().splitlines()]


def write_bundle(path, objs):
    with open(path, "w") as f:
        for o in objs:
            f.write(json.dumps(o, separators=(",", ":"),
                               ensure_ascii=False) + "\n")


def verify_proof(pub, bundle, *extra):
    return run("verify-proof", "--pubkey", pub, *extra, bundle)


def make_log(sandbox_factory, host=None):
    args = "-T 5" + (" -H " + host if host else "")
    sbx = sandbox_factory(audit=True, audit_args=args)
    wait_records(sbx, lambda r: any(x["event"] == "writer_start"
                                    for x in r))
    # alice, bob, carol and a lookalike user interleaved
    send(sbx, ["alice", "bob", "carol", "alice2"], 1, 40)
    return sbx


def test_prove_one_user_and_verify_with_pubkey_only(sandbox_factory,
                                                    tmp_path):
    sbx = make_log(sandbox_factory)
    log = sbx.audit_log_path
    # an alice record after the newest checkpoint (bounded: a checkpoint
    # follows every 5th record)
    for uid in range(500, 506):
        send(sbx, ["alice"], uid, 1)
        if json.loads(log_lines(log)[-1])["event"] != "checkpoint":
            break
    lines = log_lines(log)
    recs = [json.loads(l) for l in lines]
    cps = [r for r in recs if r["event"] == "checkpoint"]
    # every checkpoint signs the RFC 9162 root of the records before it
    assert len(cps) >= 5
    for r in cps:
        assert r["root"] == mth([leaf(l) for l in
                                 lines[:r["seq"] - 1]]).hex()
    last_cp = cps[-1]["seq"]
    alice = [r["seq"] for r in recs if r.get("user") == "alice"]
    covered = [s for s in alice if s < last_cp]
    assert covered and len(covered) < len(alice), \
        "the test needs alice records on both sides of the last checkpoint"

    bundle = str(tmp_path / "alice.proof")
    rc, out = run("prove", "--user", "alice", "-o", bundle, log)
    assert rc == 0, out
    assert "left out" in out and "not yet covered" in out
    objs = read_bundle(bundle)
    assert objs[0] == {"bundle": "mailward-proof", "version": 1,
                       "host": "sandbox", "checkpoints": 1,
                       "records": len(covered)}
    assert objs[1]["checkpoint"].encode() == lines[last_cp - 1]
    entries = objs[2:]
    assert [e["index"] + 1 for e in entries] == covered
    # no other user's record is in it (alice2 is another user)
    raw = open(bundle, "rb").read()
    for other in (b"bob", b"carol", b"alice2"):
        assert other not in raw
    for e in entries:
        rec = json.loads(e["record"])
        assert rec["user"] == "alice"
        assert e["record"].encode() == lines[e["index"]]
        assert e["checkpoint"] == last_cp
        # ~log2(n) hashes
        assert len(e["path"].split(",")) <= (last_cp - 1).bit_length()

    # the auditor holds only the bundle and checkpoint.pub
    aud = tmp_path / "auditor"
    aud.mkdir()
    pub = str(aud / "checkpoint.pub")
    shutil.copy(os.path.join(sbx.audit_keys, "checkpoint.pub"), pub)
    shutil.copy(bundle, str(aud / "alice.proof"))
    rc, out = verify_proof(pub, str(aud / "alice.proof"))
    assert rc == 0, out
    assert out.startswith("seq %d " % covered[0]), out
    assert ("PASS: %d record(s) of host sandbox are in the Merkle tree "
            "signed by checkpoint seq %d" % (len(covered), last_cp)) in out
    rc, out = verify_proof(pub, str(aud / "alice.proof"), "--host",
                           "sandbox")
    assert rc == 0, out

    # --- tamper cases: each FAILS, naming what ---
    def tampered(name, edit):
        objs = read_bundle(bundle)
        edit(objs)
        p = str(aud / name)
        write_bundle(p, objs)
        return verify_proof(pub, p)

    two = next(i for i, e in enumerate(entries, 2)
               if len(e["path"].split(",")) >= 2)
    seq2 = objs[two]["index"] + 1

    def edit_record(o):
        o[two]["record"] = o[two]["record"].replace(
            '"uid":%d' % json.loads(o[two]["record"])["uid"], '"uid":999')

    def swap_sibling(o):
        p = o[two]["path"].split(",")
        p[0], p[1] = p[1], p[0]
        o[two]["path"] = ",".join(p)

    def change_hash(o):
        p = o[two]["path"].split(",")
        p[-1] = ("0" if p[-1][0] != "0" else "1") + p[-1][1:]
        o[two]["path"] = ",".join(p)

    def wrong_index(o):
        o[two]["index"] += 1

    def forged_root(o):
        cp = json.loads(o[1]["checkpoint"])
        fake = mth([leaf(b"forged")]).hex()
        o[1]["checkpoint"] = o[1]["checkpoint"].replace(cp["root"], fake)

    def other_root_sig(o):
        # root and signature of another (earlier) real checkpoint
        cp = json.loads(o[1]["checkpoint"])
        o[1]["checkpoint"] = o[1]["checkpoint"].replace(
            cp["root"], cps[0]["root"]).replace(cp["sig"], cps[0]["sig"])

    def changed_sig(o):
        cp = json.loads(o[1]["checkpoint"])
        s = cp["sig"]
        o[1]["checkpoint"] = o[1]["checkpoint"].replace(
            s, s[:-1] + ("0" if s[-1] != "0" else "1"))

    def other_users_record(o):
        # the next genuine record (another user's) with alice's proof
        o[two]["record"] = lines[seq2].decode()

    cases = [
        ("edited", edit_record, "FAIL: bad-proof", "record seq %d" % seq2),
        ("swapped", swap_sibling, "FAIL: bad-proof", "record seq %d" % seq2),
        ("hash", change_hash, "FAIL: bad-proof", "record seq %d" % seq2),
        ("index", wrong_index, "FAIL: bad-index", "record seq %d" % seq2),
        ("root", forged_root, "FAIL: bad-signature",
         "checkpoint seq %d" % last_cp),
        ("othersig", other_root_sig, "FAIL: bad-signature",
         "checkpoint seq %d" % last_cp),
        ("sig", changed_sig, "FAIL: bad-signature",
         "checkpoint seq %d" % last_cp),
        ("swaprec", other_users_record, "FAIL: bad-index",
         "record seq %d" % (seq2 + 1)),
    ]
    for name, edit, what, where in cases:
        rc, out = tampered(name, edit)
        assert rc == 1, (name, out)
        assert out.startswith(what), (name, out)
        assert where in out, (name, out)
        assert "PASS" not in out, (name, out)

    # a bundle from another host: its own keys, and the same keys
    other = make_log(sandbox_factory, host="mx2.example.org")
    obundle = str(aud / "other.proof")
    rc, out = run("prove", "--user", "alice", "-o", obundle,
                  other.audit_log_path)
    assert rc == 0, out
    rc, out = verify_proof(pub, obundle)
    assert rc == 1 and out.startswith("FAIL: bad-signature"), out
    opub = os.path.join(other.audit_keys, "checkpoint.pub")
    rc, out = verify_proof(opub, obundle)
    assert rc == 0, out
    rc, out = verify_proof(opub, obundle, "--host", "sandbox")
    assert rc == 1, out
    assert out.startswith("FAIL: wrong-host"), out
    assert "mx2.example.org" in out
    # one record of the other host slipped into this host's bundle
    mixed = read_bundle(bundle)
    mixed[two] = read_bundle(obundle)[2]
    write_bundle(str(aud / "mixed.proof"), mixed)
    rc, out = verify_proof(pub, str(aud / "mixed.proof"))
    assert rc == 1 and out.startswith("FAIL: wrong-host"), out


def sign(keyfile, msg, tmp_path):
    m = tmp_path / "msg"
    m.write_bytes(msg)
    r = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", keyfile,
                        "-rawin", "-in", str(m)], capture_output=True,
                       timeout=60, check=True)
    assert len(r.stdout) == 64
    return r.stdout.hex()


def rewrite_from(lines, k, new_line, keyfile, tmp_path):
    """A thief of the host's checkpoint key rewrites record k (index) and
    re-links, re-roots and re-signs everything after it (MACs stay
    stale: verified here without the MAC key)."""
    out = list(lines[:k]) + [new_line]
    for i in range(k + 1, len(lines)):
        ln = lines[i]
        rec = json.loads(ln)
        prev = hashlib.sha256(out[i - 1]).hexdigest()
        ln = ln.replace(('"prev":"%s"' % rec["prev"]).encode(),
                        ('"prev":"%s"' % prev).encode())
        if rec["event"] == "checkpoint":
            root = mth([leaf(l) for l in out[:i]]).hex()
            msg = ("mailward-checkpoint v2\nhost=%s\nseq=%d\nchain=%s\n"
                   "time=%s\ntree_size=%d\nroot=%s\n" % (
                       rec["host"], rec["seq"], prev, rec["time"],
                       rec["seq"] - 1, root)).encode()
            ln = ln.replace(('"root":"%s"' % rec["root"]).encode(),
                            ('"root":"%s"' % root).encode())
            ln = ln.replace(('"sig":"%s"' % rec["sig"]).encode(),
                            ('"sig":"%s"' % sign(keyfile, msg,
                                                 tmp_path)).encode())
        out.append(ln)
    return out


def test_consistency_with_kept_checkpoint(sandbox_factory, tmp_path):
    sbx = make_log(sandbox_factory)
    pub = os.path.join(sbx.audit_keys, "checkpoint.pub")
    lines = log_lines(sbx.audit_log_path)
    recs = [json.loads(l) for l in lines]
    kept_rec = [r for r in recs if r["event"] == "checkpoint"][-1]
    kept = lines[kept_rec["seq"] - 1].decode()
    kept_file = tmp_path / "kept.jsonl"
    kept_file.write_text(kept + "\n")
    # the log grows; the auditor comes back later
    send(sbx, ["alice", "bob"], 100, 20)
    rc, out = run("verify", "--pubkey", pub, "--consistency", kept,
                  sbx.audit_log_path)
    assert rc == 0, out
    lines2 = log_lines(sbx.audit_log_path)
    new_cp = [json.loads(l) for l in lines2
              if b'"event":"checkpoint"' in l][-1]
    assert new_cp["seq"] > kept_rec["seq"]
    assert ("consistency: 1 kept checkpoint(s) proved; the last one's tree "
            "of %d records is a prefix of the tree of %d records signed by "
            "checkpoint seq %d" % (kept_rec["seq"] - 1, new_cp["seq"] - 1,
                                   new_cp["seq"])) in out
    rc, out = run("verify", "--pubkey", pub, "--consistency",
                  str(kept_file), sbx.audit_log_path)
    assert rc == 0, out

    # truncated below the kept checkpoint (no MAC key needed)
    trunc = tmp_path / "truncated.jsonl"
    trunc.write_bytes(b"\n".join(lines2[:kept_rec["seq"] - 3]) + b"\n")
    rc, out = run("verify", "--pubkey", pub, trunc)
    assert rc == 0, out  # on its own it looks fine
    rc, out = run("verify", "--pubkey", pub, "--consistency", kept,
                  str(trunc))
    assert rc == 1, out
    assert out.startswith("FAIL: truncated"), out

    # history rewritten below the kept checkpoint by a thief of the
    # signing key: chain, roots and signatures all re-made
    victim = next(i for i, r in enumerate(recs)
                  if r.get("user") == "bob" and r["seq"] < kept_rec["seq"])
    new = lines2[victim].replace(b'"user":"bob"', b'"user":"eve"')
    keyfile = os.path.join(sbx.audit_writer_keys, "checkpoint.key")
    forged = rewrite_from(lines2, victim, new, keyfile, tmp_path)
    fpath = tmp_path / "rewritten.jsonl"
    fpath.write_bytes(b"\n".join(forged) + b"\n")
    rc, out = run("verify", "--pubkey", pub, str(fpath))
    assert rc == 0, out  # signatures and roots all check out ...
    rc, out = run("verify", "--pubkey", pub, "--consistency", kept,
                  str(fpath))
    assert rc == 1, out  # ... but it does not extend what was kept
    assert out.startswith("FAIL: inconsistent"), out
    assert "kept checkpoint seq %d" % kept_rec["seq"] in out

    # a kept checkpoint with a changed root is refused as input
    bad = kept.replace(kept_rec["root"], "0" * 64)
    rc, out = run("verify", "--pubkey", pub, "--consistency", bad,
                  sbx.audit_log_path)
    assert rc == 3, out
    assert "signature does not verify" in out


def test_tree_continues_across_crash_and_rotation(sandbox_factory, tmp_path):
    """The real writer keeps the tree across a SIGKILL (state file read
    forward) and a rotation (SIGHUP): every root of both files matches
    the records, and the log proves consistent with a checkpoint kept
    before both."""
    sbx = make_log(sandbox_factory)
    sbx.log_allow.append(r"service\(mailward-audit\): child \d+ killed "
                         r"with signal 9")
    pub = os.path.join(sbx.audit_keys, "checkpoint.pub")
    kept = [l for l in log_lines(sbx.audit_log_path)
            if b'"event":"checkpoint"' in l][-1].decode()
    # crash after records that no checkpoint covers yet
    send(sbx, ["alice"], 200, 3)
    old = sbx.audit_writer_pids()
    os.kill(old[0], signal.SIGKILL)
    wait_writer(sbx, old)
    wait_records(sbx, lambda r: [x["event"] for x in r].count(
        "writer_start") == 2)
    send(sbx, ["bob"], 300, 7)
    pid = sbx.audit_writer_pids()[0]
    os.kill(pid, signal.SIGHUP)
    line = sbx.wait_log(r"mailward-audit: Info: audit log rotated: .* -> ")
    rotated = line[0].split(" -> ")[1].strip()
    send(sbx, ["carol"], 400, 12)
    files = [rotated, sbx.audit_log_path]
    lines = log_lines(rotated) + log_lines(sbx.audit_log_path)
    cps = [json.loads(l) for l in lines if b'"event":"checkpoint"' in l]
    assert all("root" in c for c in cps)
    for c in cps:
        assert c["root"] == mth([leaf(l) for l in
                                 lines[:c["seq"] - 1]]).hex(), c["seq"]
    new_file_cps = [c for c in cps if c["seq"] > json.loads(
        log_lines(rotated)[-1])["seq"]]
    assert new_file_cps
    rc, out = run("verify", "--pubkey", pub, "--consistency", kept, *files)
    assert rc == 0, out
    assert "Merkle roots: %d of %d checkpoint(s)" % (len(cps), len(cps)) \
        in out
    assert "consistency: 1 kept checkpoint(s) proved" in out
    assert "Merkle tree state" not in sbx.read_log()
