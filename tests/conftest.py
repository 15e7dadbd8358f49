import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwharness  # noqa: E402


@pytest.fixture
def sandbox_factory(request):
    """Returns a function that starts a Sandbox; every sandbox is stopped
    at the end of the test (also when it fails) and its log is checked
    for panics, fatals and crashed processes."""
    boxes = []

    def make(**kw):
        sbx = mwharness.Sandbox(**kw)
        boxes.append(sbx)
        return sbx.start()

    yield make
    errors = []
    for sbx in boxes:
        try:
            sbx.stop(check=True)
        except AssertionError as e:
            errors.append(str(e))
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            sys.stderr.write("--- dovecot log of %s ---\n%s\n" %
                             (sbx.dir, sbx.read_log()[-6000:]))
        elif os.environ.get("MAILWARD_KEEP") is None:
            sbx.cleanup()
    if errors:
        pytest.fail("\n".join(errors))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "core: tests of the Dovecot-free core only (unit "
        "tests): run once, not per Dovecot release line")
    config.addinivalue_line(
        "markers", "only_dovecot23(reason): a test that does not run on "
        "Dovecot 2.4 yet (the reason says why)")


def pytest_collection_modifyitems(config, items):
    """MAILWARD_SKIP_CORE=1 (the second Dovecot line of run-tests.sh)
    leaves out the core-only tests; tests marked only_dovecot23 are
    skipped on 2.4 with their reason."""
    if os.environ.get("MAILWARD_SKIP_CORE"):
        keep = [i for i in items if i.get_closest_marker("core") is None]
        dropped = [i for i in items if i.get_closest_marker("core")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    if mwharness.DOVECOT_24:
        for item in items:
            m = item.get_closest_marker("only_dovecot23")
            if m is not None:
                reason = m.args[0] if m.args else m.kwargs.get("reason")
                assert reason, "only_dovecot23 needs a reason"
                item.add_marker(pytest.mark.skip(
                    reason="not on Dovecot 2.4 yet: " + reason))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
