"""The red-team submissions of the red-team lab: hostile, broken and honest, with the exact verdict.

Each case is ``Case(files, score, reasons)``: the files of the submission folder, the exact
automatic score out of 4 it must get, and substrings that must appear in the recorded reason
(the submission's notes and per-question feedback, joined). ``extra`` names a further check the
test module runs (e.g. no process left behind, outputs free of hidden code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from aisec.grading.cgroup import memory_group_status

from .builders import insert_after, solved, stub, with_answer
from .fakelab import LAB

#: Whether this host gives each sandbox a memory cgroup (else each process has its own limit only).
CGROUP = memory_group_status()[0]

NB = f"{LAB}.ipynb"
MAX = 4.0


@dataclass
class Case:
    build: Callable[[Path], dict[str, Any]]
    score: float
    reasons: list[str] = field(default_factory=list)
    extra: str = ""


def honest(root: Path) -> NotebookNode:
    return solved(root, LAB)


def _one(nb: NotebookNode) -> dict[str, Any]:
    return {NB: nb}


WRONG_ADD = "def add(a, b):\n    return a - b\n"
# Walks every directory the sandbox shows (not /proc, /sys, /dev, /usr or the virtualenv).
WALK = (
    "import os\n"
    "def hunt(match):\n"
    "    hits = []\n"
    "    for top in os.listdir('/'):\n"
    "        if top in ('proc', 'sys', 'dev', 'usr', 'lib', 'lib64', 'bin', 'sbin'):\n"
    "            continue\n"
    "        for d, dirs, files in os.walk('/' + top):\n"
    "            dirs[:] = [x for x in dirs if x not in ('.venv', 'site-packages')]\n"
    "            hits += [os.path.join(d, f) for f in files if match(d, f)]\n"
    "    return hits\n"
)

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- honest and plain wrong
    "honest": Case(lambda r: _one(honest(r)), 4.0),
    "honest_with_warnings": Case(lambda r: _one(with_answer(
        honest(r), "q2_mean",
        "import sys, warnings\n"
        "def mean(xs):\n"
        "    warnings.warn('torch-style deprecation: mean() will change', DeprecationWarning)\n"
        "    warnings.warn('transformers-style UserWarning')\n"
        "    print('progress 100%', file=sys.stderr)\n"
        "    return float(sum(xs)) / len(xs)\n")), 4.0),
    "untouched_stub": Case(lambda r: _one(stub(r, LAB)), 0.0, ["not answered yet"]),
    "partial": Case(lambda r: _one(with_answer(with_answer(honest(r), "q3_words", "def words(text):\n    return text.split()\n"),
                                               "q4_accuracy", "def accuracy(pred, truth):\n    return 1.0\n")),
                    2.0, ["q3_words_test.words", "q4_accuracy_test.value"]),
    "hardcoded_visible_answer": Case(lambda r: _one(with_answer(honest(r), "q1_add", "def add(a, b):\n    return 3\n")),
                                     3.0, ["q1_add_test.values: an item is not within the tolerance of the expected value"]),
    # ------------------------------------------------------------------- faking equality
    "eq_always_true": Case(lambda r: _one(with_answer(
        honest(r), "q1_add",
        "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()\n")), 3.0, ["could not be graded: a value of an unsupported type"]),
    "int_subclass_fakes_equality": Case(lambda r: _one(with_answer(
        honest(r), "q1_add",
        "class FakeInt(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return FakeInt(0)\n")), 3.0, ["could not be graded: a value of an unsupported type"]),
    "float_subclass_fakes_closeness": Case(lambda r: _one(with_answer(
        honest(r), "q2_mean",
        "class FakeFloat(float):\n    def __sub__(self, other):\n        return 0.0\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = float.__hash__\n"
        "def mean(xs):\n    return FakeFloat(99.0)\n")), 3.0, ["could not be graded: a value of an unsupported type"]),
    "strip_asserts_ast_transformer": Case(lambda r: _one(insert_after(with_answer(honest(r), "q1_add", WRONG_ADD), "setup",
        "import ast\n"
        "class NoAsserts(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n        return ast.Pass()\n"
        "get_ipython().ast_transformers.append(NoAsserts())\n")), 3.0, ["q1_add_test.values: an item is not within the tolerance"]),
    "monkeypatch_record_serialiser": Case(lambda r: _one(insert_after(with_answer(honest(r), "q1_add", WRONG_ADD), "setup",
        "import aisec.check\naisec.check.to_plain = lambda value: [1, 4, 7, 10, 13, 16, 19]\n")), 0.0,
        ["q1_add_test.values", "q2_mean_test.value: should be a number"]),
    "tamper_builtins": Case(lambda r: _one(insert_after(with_answer(with_answer(honest(r),
        "q2_mean", "def mean(xs):\n    return 0.0\n"), "q3_words", "def words(text):\n    return text.split()\n"), "setup",
        "import builtins\n"
        "builtins.abs = lambda x: 0  # the visible check of q2 now passes\n"
        "_sorted = builtins.sorted\n"
        "builtins.sorted = lambda x, **k: ['a', 'b'] if x and 'A' in x else _sorted(x, **k)\n")), 2.0,
        ["q2_mean_test.value: is not within the tolerance", "q3_words_test.words"]),
    "forged_duplicate_record": Case(lambda r: _one(with_answer(
        honest(r), "q1_add",
        "from IPython.display import display\n"
        "def add(a, b):\n"
        "    display({'application/vnd.aisec.record+json': {'key': 'q1_add_test.values', 'value': [], 'rule': {}},\n"
        "             'text/plain': 'forged'}, raw=True)\n"
        "    return a + b\n")), 3.0, ["recorded more than once"]),
    "edited_test_cell": Case(lambda r: _one(with_answer(with_answer(honest(r), "q1_add", WRONG_ADD), "q1_add_test", "pass\n")),
                             3.0, ["q1_add_test.values"]),
    "renamed_grade_id": Case(lambda r: _one(_rename_id(with_answer(honest(r), "q1_add", WRONG_ADD), "q1_add_test", "q1_mine")),
                             3.0, ["'q1_mine' is not in the lab", "q1_add_test.values"]),
    "deleted_test_cell": Case(lambda r: _one(_delete(honest(r), "q2_mean_test")), 4.0, ["test cell 'q2_mean_test' was missing"]),
    "deleted_answer_cell": Case(lambda r: _one(_delete(honest(r), "q3_words")), 3.0, ["raised NameError"]),
    # ------------------------------------------------------------------ leaving the sandbox
    "read_course_files": Case(lambda r: _one(insert_after(honest(r), "setup", WALK + "print('FOUND', hunt(lambda d, f: 'solutions' in d or f.endswith('.db')))\n")),
                              4.0, [], extra="found_nothing"),
    "write_gradebook": Case(lambda r: _one(insert_after(stub(r, LAB), "setup", WALK +
        "import sqlite3\n"
        "dbs = hunt(lambda d, f: f.endswith('.db'))\n"
        "print('DBS', dbs)\n"
        "for db in dbs:\n"
        "    sqlite3.connect(db).execute('update grade set auto_score = 100')\n")), 0.0, [], extra="gradebook_clean"),
    "network_exfiltration": Case(lambda r: _one(insert_after(honest(r), "setup",
        "import socket, urllib.request\n"
        "for target in ['http://1.1.1.1', 'http://example.com']:\n"
        "    try:\n        urllib.request.urlopen(target, timeout=3)\n        print('NET OK', target)\n"
        "    except OSError as e:\n        print('NET BLOCKED', target, type(e).__name__)\n")), 4.0, [], extra="network_blocked"),
    "detect_grader_env": Case(lambda r: _one(insert_after(honest(r), "setup",
        "import os, socket\n"
        "print('ENV', sorted(os.environ), socket.gethostname(), os.getcwd())\n"
        "if any(k.startswith('NBGRADER') for k in os.environ):\n"
        "    def add(a, b):\n        return 0\n")), 4.0, [], extra="env_is_sandbox_env"),
    # --------------------------------------------------------------------------- resources
    "fork_bomb": Case(lambda r: _one(insert_after(honest(r), "setup",
        "import os, time\nforks = 0\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n"
        "        forks += 1\n"
        "except OSError as e:\n    print('FORK REFUSED after', forks, type(e).__name__)\n")), 4.0, [], extra="fork_refused"),
    "background_process_survives": Case(lambda r: _one(insert_after(honest(r), "setup",
        "import subprocess\n"
        "subprocess.Popen(['/bin/sh', '-c', 'sleep 987'], start_new_session=True)\n"
        "subprocess.Popen(['/bin/sh', '-c', 'nohup sleep 986 &'], start_new_session=True)\n")), 4.0, [], extra="no_leftover"),
    "memory_bomb": Case(lambda r: _one(insert_after(honest(r), "setup",
        "hog = []\n"
        "try:\n    while True:\n        hog.append(bytearray(64 * 1024 * 1024))\n"
        "except MemoryError:\n    print('MEMORY LIMIT after', len(hog) * 64, 'MiB')\n    hog.clear()\n")), 4.0, [],
        extra="memory_limited"),
    "huge_print": Case(lambda r: _one(insert_after(honest(r), "setup", "print('x' * (30 * 1024 * 1024))\n")), 4.0, [],
                       extra="small_notebook"),
    "huge_file": Case(lambda r: _one(insert_after(honest(r), "setup",
        "try:\n    with open('big.bin', 'wb') as f:\n        for _ in range(4096):\n            f.write(b'0' * (1024 * 1024))\n"
        "except OSError as e:\n    print('WRITE REFUSED', e.errno)\n")), 4.0, [], extra="write_refused"),
    "infinite_loop": Case(lambda r: _one(with_answer(honest(r), "q2_mean", "def mean(xs):\n    while True:\n        pass\n")),
                          1.0, ["ran longer than its limit of 10 s", "ran past its time limit"]),
    "kernel_suicide": Case(lambda r: _one(with_answer(honest(r), "q3_words", "import os\nos.kill(os.getpid(), 9)\n")),
                           2.0, ["kernel died"]),
    "leak_hidden_tests_via_transformer": Case(lambda r: _one(insert_after(honest(r), "setup",
        "def spy(lines):\n    print('SPY', ''.join(lines))\n    return lines\n"
        "get_ipython().input_transformers_post.append(spy)\n")), 4.0, [], extra="no_hidden_code"),
    # ------------------------------------------------------------- forged points, exfiltration
    # Swallow every error and display a record meeting the threshold: the grader scores raw outputs.
    "forged_threshold_hook": Case(lambda r: _one(insert_after(stub(r, LAB), "setup",
        "from IPython.display import display\n"
        "ip = get_ipython()\n"
        "ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
        "def forge(result):\n"
        "    for key in ('q4_accuracy_test.good_enough', 'q4_accuracy_test.value'):\n"
        "        display({'application/vnd.aisec.record+json': {'key': key, 'value': 1.0, 'rule': {}}, 'text/plain': ''}, raw=True)\n"
        "ip.events.register('post_run_cell', forge)\n")), 0.0, ["q4_accuracy_test.good_enough: should be a dict"]),
    # Hidden code sits in the kernel's history: every output kind and an exception's own name carry it, encoded.
    "exfiltrate_hidden_code_encoded": Case(lambda r: _one(insert_after(honest(r), "setup", EXFIL)), 4.0, [],
                                           extra="no_exfiltration"),
    "marker_text_in_answer": Case(lambda r: _one(with_answer(honest(r), "q1_add",
        "# my notes: ### BEGIN HIDDEN TESTS is how nbgrader hides tests\n"
        "MARKER = '### BEGIN HIDDEN TESTS'\n"
        "def add(a, b):\n    return a + b\n")), 4.0, []),
    "slow_hang": Case(lambda r: _one(with_answer(honest(r), "q2_mean", "import time\ndef mean(xs):\n    time.sleep(1000)\n")),
                      1.0, ["ran longer than its limit of 10 s"], extra="cut_early"),
    # With a memory cgroup the sandbox is stopped as a whole; the stated fallback limits each process only.
    "many_processes_add_up": Case(lambda r: _one(insert_after(honest(r), "setup", MANY_PROCESSES)),
                                  0.0 if CGROUP else 4.0, ["more than its memory limit"] if CGROUP else [],
                                  extra="sandbox_memory"),
    "odd_text_everywhere": Case(lambda r: _one(with_answer(honest(r), "q3_words",
        "# \u202e\u200b\U0001f642 \u00fcn\u00efc\u00f6d\u00e9 \ufeff\n"
        "NUL = '\\x00'\nLONE = '\\ud800'\n"
        "print('\\x00\\x1b[31m' + '\\ud800'.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace') + '\\u202e' * 10)\n"
        "def words(text):\n    return list({w.lower() for w in text.split()})\n")), 4.0, []),
    # --------------------------------------------------------------------------- malformed
    "malformed_nbgrader_metadata": Case(lambda r: _one(_bad_metadata(honest(r))), 4.0,
                                        ["nbgrader metadata was malformed: treated as an ordinary cell"]),
    "invalid_json": Case(lambda r: {NB: b'{"cells": [ this is not json'}, 0.0, ["not a readable notebook"]),
    "wrong_kernel_name": Case(lambda r: _one(_kernel(honest(r), "ir")), 4.0, ["kernel 'ir' replaced by python3"]),
    "renamed_notebook": Case(lambda r: {"my work (final).ipynb": honest(r)}, 4.0, ["notebook renamed"]),
    "no_notebook": Case(lambda r: {"notes.txt": "I forgot"}, 0.0, ["missing from the submission"]),
}


EXFIL = (
    "import base64, sys\n"
    "from IPython.display import display, HTML\n"
    "ip = get_ipython()\n"
    "def leak(result):\n"
    "    blob = base64.b64encode('\\n'.join(ip.user_ns.get('In', [])).encode()).decode()\n"
    "    print('EXFIL' + blob[-3000:])\n"
    "    print('EXFIL' + blob[-3000:], file=sys.stderr)\n"
    "    display(HTML('<b>EXFIL' + blob[-3000:] + '</b>'))\n"
    "ip.events.register('post_run_cell', leak)\n"
    "def named(exc_type, value, tb, tb_offset=None):\n"
    "    blob = base64.b32encode('\\n'.join(ip.user_ns.get('In', [])).encode()).decode()[-60:].replace('=', '')\n"
    "    ip.showtraceback((type('EXFIL' + blob, (Exception,), {}), Exception('EXFIL' + blob), tb))\n"
    "ip.set_custom_exc((Exception,), named)\n"
)

# Six children of 500 MB each: 3 GB together, each under the per-process limit (2 GB), over the sandbox's 2.5 GB.
MANY_PROCESSES = (
    "import os, select, time\n"
    "pipes = []\n"
    "for _ in range(6):  # all at once: the sandbox's total crosses its limit within a second\n"
    "    r, w = os.pipe()\n"
    "    if os.fork() == 0:\n"
    "        hog = b'\\x01' * (500 * 1024 * 1024)  # written, so resident\n"
    "        os.write(w, b'k')\n"
    "        time.sleep(30)\n"
    "        os._exit(0)\n"
    "    os.close(w)\n"
    "    pipes.append(r)\n"
    "held, deadline = 0, time.monotonic() + 4\n"
    "for r in pipes:\n"
    "    if select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]:\n"
    "        held += 500 * (os.read(r, 1) == b'k')\n"
    "print('CHILDREN HELD', held, 'MB')\n"
    "time.sleep(3)  # the children hold their memory a while\n"
)


def _bad_metadata(nb: NotebookNode) -> NotebookNode:
    """Cells of the student's own with nbgrader metadata of the wrong shape."""
    nb.cells.insert(1, nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": "not a dict"}))
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("notes", metadata={"nbgrader": {"grade": "yes", "grade_id": 7}}))
    return nb


def _rename_id(nb: NotebookNode, old: str, new: str) -> NotebookNode:
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == old:
            meta["grade_id"] = new
            cell.source = "pass\n"
    return nb


def _delete(nb: NotebookNode, grade_id: str) -> NotebookNode:
    nb.cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def _kernel(nb: NotebookNode, name: str) -> NotebookNode:
    nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": "R"}
    return nb


def as_files(files: dict[str, Any]) -> dict[str, Any]:
    """Notebooks as JSON text, other content as is."""
    return {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in files.items()}


__all__ = ["CASES", "Case", "MAX", "NB", "as_files", "nbformat"]
