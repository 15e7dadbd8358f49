"""Dovecot 2.4 accepts only declared settings: every mailward setting the
core reads (mw_setting_defs in src/core/mw-policy.c) must also be declared
in src/plugins/mailward/mailward-settings.c (the setting_parser_info of the
plugin and of the settings module lib20_mailward_settings.so), or 2.4's
doveconf rejects it as unknown and mailward never sees it."""
import os
import re

import pytest

import mwharness

# a source check: run once, not per Dovecot release line
pytestmark = pytest.mark.core


def _names(path, rx):
    with open(os.path.join(mwharness.REPO, path)) as f:
        return set(re.findall(rx, f.read()))


def test_every_setting_declared_for_dovecot_24():
    core = _names("src/core/mw-policy.c", r'\{ "(mailward_[a-z0-9_]+)",')
    declared = _names("src/plugins/mailward/mailward-settings.c",
                      r"DEF\((mailward_[a-z0-9_]+)\)")
    assert core, "no settings found in mw_setting_defs"
    assert core - declared == set(), \
        "not declared in mailward-settings.c: %s" % sorted(core - declared)
