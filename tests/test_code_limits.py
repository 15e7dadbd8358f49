"""Issue 15's limits on the source tree, checked on every run: no C source
or header in src/ over 800 lines, no C function over 80 lines, and the same
for the Python of bench/ (files and functions). A file or function that
grows past the limit fails here with its name and size."""
import ast
import glob
import os
import re

import pytest

import mwharness

# the sources only: run once, not per Dovecot release line
pytestmark = pytest.mark.core

FILE_LINES = 800
FUNCTION_LINES = 80


def _files(pattern):
    return sorted(glob.glob(os.path.join(mwharness.REPO, pattern),
                            recursive=True))


def c_functions(text):
    """(name, first line, length in lines) of each function definition in
    Dovecot style C: the body opens with '{' in column 0 and closes with
    '}' in column 0; the name is the identifier before the first '(' of
    the declarator above."""
    lines = text.split("\n")
    found = []
    start = None
    for i, line in enumerate(lines):
        if start is None and line.startswith("{"):
            j = i - 1
            while j >= 0 and "(" not in lines[j]:
                j -= 1
            # the declarator may span lines: take its first line
            while j > 0 and lines[j - 1].strip() and \
                    not lines[j - 1].rstrip().endswith((";", "}", "*/")) \
                    and not lines[j - 1].startswith("#"):
                j -= 1
            m = re.search(r"(\w+)\s*\(", " ".join(lines[j:i]))
            start = (m.group(1) if m else "?", i)
        elif start is not None and line.startswith("}"):
            found.append((start[0], start[1] + 1, i - start[1] + 1))
            start = None
    return found


def test_c_function_parser_finds_functions():
    """The parser above sees a long function (a test that cannot fail is
    no test)."""
    body = "\n".join("\tx++;" for _ in range(100))
    text = "static int\nlong_one(int a,\n\t int b)\n{\n%s\n}\n" \
        "void short_one(void)\n{\n}\n" % body
    assert c_functions(text) == [("long_one", 4, 102), ("short_one", 107, 2)]


def test_c_sources_within_limits():
    over = []
    for path in _files("src/**/*.[ch]"):
        with open(path) as f:
            text = f.read()
        rel = os.path.relpath(path, mwharness.REPO)
        n = text.count("\n")
        if n > FILE_LINES:
            over.append("%s: %d lines" % (rel, n))
        if path.endswith(".c"):
            for name, line, length in c_functions(text):
                if length > FUNCTION_LINES:
                    over.append("%s:%d: %s() %d lines" %
                                (rel, line, name, length))
    assert not over, "\n" + "\n".join(over)


def test_bench_python_within_limits():
    over = []
    paths = _files("bench/**/*.py")
    assert paths
    for path in paths:
        with open(path) as f:
            text = f.read()
        rel = os.path.relpath(path, mwharness.REPO)
        if text.count("\n") > FILE_LINES:
            over.append("%s: %d lines" % (rel, text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    over.append("%s:%d: %s() %d lines" %
                                (rel, node.lineno, node.name, length))
    assert not over, "\n" + "\n".join(over)
