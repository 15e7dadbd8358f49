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


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
