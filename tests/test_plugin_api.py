"""The storage plugin's interface to its sibling plugins (issue 15), read
from the sources: the pop3, imap and doveadm plugins use only the public
header mailward-plugin.h, where struct mailward_user is opaque (as
Dovecot's imap_quota uses only quota.h), and the storage plugin's own files
call each other one way (user and settings -> state and device -> audit ->
expunge -> storage vfuncs -> hooks), without a cycle."""
import collections
import glob
import os
import re

import pytest

import mwharness

# sources only: run once, not per Dovecot release line
pytestmark = pytest.mark.core

PLUGINS = os.path.join(mwharness.REPO, "src", "plugins")
STORAGE = os.path.join(PLUGINS, "mailward")
SIBLINGS = ["pop3-mailward", "imap-mailward", "doveadm-mailward"]


def read(path):
    with open(path) as f:
        return f.read()


def sibling_sources():
    files = []
    for d in SIBLINGS:
        files += sorted(glob.glob(os.path.join(PLUGINS, d, "*.[ch]")))
    assert files
    return files


def test_sibling_plugins_include_only_the_public_header():
    bad = []
    for path in sibling_sources():
        text = read(path)
        for m in re.finditer(r'#\s*include\s+"(mailward-private\.h)"', text):
            bad.append((os.path.basename(path), m.group(1)))
    assert bad == []


def test_sibling_plugins_touch_no_mailward_user_field():
    # the context is reached through mailward_user_get(), its state
    # through functions: no field read or written, no module context
    bad = []
    for path in sibling_sources():
        for n, line in enumerate(read(path).splitlines(), 1):
            if re.search(r"\bmuser->|\bMAILWARD_(USER_)?CONTEXT\b", line):
                bad.append("%s:%d: %s" % (os.path.basename(path), n,
                                          line.strip()))
    assert bad == []


def test_public_header_keeps_mailward_user_opaque():
    public = read(os.path.join(STORAGE, "mailward-plugin.h"))
    assert re.search(r"^struct mailward_user;$", public, re.M)
    assert re.search(r"^struct \w+ \{", public, re.M) is None
    assert '#include "mailward-private.h"' not in public
    private = read(os.path.join(STORAGE, "mailward-private.h"))
    assert re.search(r"^struct mailward_user \{", private, re.M)
    assert '#include "mailward-plugin.h"' in private


def storage_call_graph():
    """file -> {file it calls}, by the mailward_* functions each .c file
    of the storage plugin defines and calls"""
    files = sorted(glob.glob(os.path.join(STORAGE, "*.c")))
    # (comments name functions too: left out)
    texts = {os.path.basename(f): re.sub(r"/\*.*?\*/", "", read(f),
                                         flags=re.S) for f in files}
    defined = {}
    for name, text in texts.items():
        for m in re.finditer(r"^(?:[a-z][a-z_ ]*[ *]+)?(mailward_\w+)\(",
                             text, re.M):
            defined.setdefault(m.group(1), name)
    graph = collections.defaultdict(set)
    for name, text in texts.items():
        # (calls only: not the definitions at the start of a line)
        for m in re.finditer(r"(?<!^)\b(mailward_\w+)\s*\(", text, re.M):
            other = defined.get(m.group(1))
            if other is not None and other != name:
                graph[name].add(other)
    return graph


# The layers of the storage plugin, bottom up: a file calls files of its
# own layer or of lower ones. Files not named here (the policy and storage
# vfunc files: mailward-policy.c, mailward-storage.c and the files split
# from them) are the expunge and storage layer.
LAYERS = [
    # user and settings (and the audit writer's transport)
    ["mailward-user.c", "mailward-actor.c", "mailward-settings.c",
     "mailward-audit-client.c", "mailward-audit-spool.c",
     "mailward-crypto.c"],
    # state and device
    ["mailward-state.c", "mailward-device.c"],
    # audit records
    ["mailward-audit-events.c"],
    # other owners' contexts, METADATA, the POP3 session object
    ["mailward-owner.c", "mailward-metadata.c", "mailward-pop3.c"],
    # expunge and storage vfuncs: the files not named
    None,
    # hooks, init and the sibling plugins' API
    ["mailward-plugin.c", "mailward-doveadm-api.c"],
]


def layer_of(name):
    for i, files in enumerate(LAYERS):
        if files is not None and name in files:
            return i
    return LAYERS.index(None)


def test_storage_plugin_calls_go_one_way():
    graph = storage_call_graph()
    for files in LAYERS:
        for f in files or ():
            assert os.path.exists(os.path.join(STORAGE, f)), f
    upward = sorted((a, b) for a in graph for b in graph[a]
                    if layer_of(b) > layer_of(a))
    assert upward == []
    # within the named layers, no cycle either
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph.get(node, ())):
            if layer_of(nxt) != layer_of(node) or \
               LAYERS[layer_of(nxt)] is None:
                continue
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            else:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_settings_state_and_device_layers_do_not_call_the_audit_layer():
    # they report through mailward_notice(); the audit layer reads them
    graph = storage_call_graph()
    for f in ("mailward-user.c", "mailward-actor.c", "mailward-state.c",
              "mailward-device.c"):
        assert os.path.exists(os.path.join(STORAGE, f)), f
        assert "mailward-audit-events.c" not in graph.get(f, set()), f
        assert "mailward-plugin.c" not in graph.get(f, set()), f
