"""The storage plugin's retrieval-policy files (issue 15), read from the
sources: they call each other one way (policy -> sweep -> dispose ->
expunge -> view -> identity; the hooks in mailward-storage.c call the
vfunc files), and policy changes storage behaviour only through calls
(mailward_policy_transaction_begin()), never through flags it sets in
shared structs."""
import glob
import os
import re

import pytest

import mwharness
from test_plugin_api import storage_call_graph

pytestmark = pytest.mark.core

STORAGE = os.path.join(mwharness.REPO, "src", "plugins", "mailward")
# callers first: a file may call only files after it
ORDER = ["mailward-storage.c", "mailward-policy.c", "mailward-sweep.c",
         "mailward-dispose.c", "mailward-expunge.c", "mailward-view.c",
         "mailward-identity.c"]


def test_policy_files_call_one_way():
    graph = storage_call_graph()
    rank = {f: i for i, f in enumerate(ORDER)}
    for f in ORDER:
        assert os.path.exists(os.path.join(STORAGE, f)), f
    backward = sorted((a, b) for a in ORDER for b in graph.get(a, ())
                      if b in rank and rank[b] <= rank[a])
    assert backward == []


def test_no_behaviour_flags_set_by_policy():
    bad = []
    for path in sorted(glob.glob(os.path.join(STORAGE, "*.[ch]"))):
        name = os.path.basename(path)
        with open(path) as f:
            text = f.read()
        if re.search(r"\bview_bypass\b", text):
            bad.append((name, "view_bypass"))
        # the policy transaction's mark is the expunge file's own
        if name != "mailward-expunge.c" and \
           re.search(r"\bpolicy_expunge\b", text):
            bad.append((name, "policy_expunge"))
    assert bad == []
