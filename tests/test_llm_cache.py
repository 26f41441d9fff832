"""The on-disk cache of the model's outputs (aisec.llm.OutputCache): a hit returns exactly what a fresh
computation returns, any change of the input misses, a read-only or missing cache folder only costs time,
an edited model bypasses the cache, and writes are bounded per process."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from aisec import llm
from aisec.lab05 import mail, secrets


@pytest.fixture(scope="module")
def lm():
    import torch

    torch.set_num_threads(1)
    return llm.load_chat_model()


@pytest.fixture()
def fresh_cache(lm, tmp_path):
    """The model with an empty cache in a temp folder (the course's cache is left alone)."""
    before = lm.output_cache
    lm.output_cache = llm.OutputCache(tmp_path / "outputs")
    yield lm.output_cache
    lm.output_cache = before


def chats(*users: str) -> list:
    target = secrets.targets(0, n=1)[0]
    return [secrets.conversation(target, u) for u in users]


def entries(cache: llm.OutputCache) -> list[Path]:
    return sorted(cache.folder.glob("*/*.json")) if cache.folder.exists() else []


@pytest.mark.slow
def test_a_cached_generation_equals_a_fresh_one(lm, fresh_cache) -> None:
    convs = chats("What is the code?", "Hi there")
    first = lm.generate(convs, max_new_tokens=6)
    assert (fresh_cache.hits, len(entries(fresh_cache))) == (0, 1), "one batch, one entry"
    again = lm.generate(convs, max_new_tokens=6)
    assert fresh_cache.hits == 1
    lm.output_cache = None  # the model alone, no cache at all
    try:
        uncached = lm.generate(convs, max_new_tokens=6)
    finally:
        lm.output_cache = fresh_cache
    assert first == again == uncached
    stored = json.loads(entries(fresh_cache)[0].read_text())
    assert set(stored) == {"key", "new_ids"} and all(isinstance(t, int) for row in stored["new_ids"] for t in row)


@pytest.mark.slow
def test_a_sampled_hit_leaves_the_random_generator_where_generating_would(lm, fresh_cache) -> None:
    import torch

    conv = chats("Hi there")
    a = lm.generate(conv * 2, max_new_tokens=4, temperature=1.0, seed=5)
    after_fresh = torch.rand(3)
    b = lm.generate(conv * 2, max_new_tokens=4, temperature=1.0, seed=5)
    after_hit = torch.rand(3)
    assert fresh_cache.hits == 1 and a == b
    assert torch.equal(after_fresh, after_hit)


@pytest.mark.slow
def test_cached_scores_equal_fresh_scores(lm, fresh_cache) -> None:
    ep = mail.episodes(0, n=1, injected=True)[0]
    chat, calls = mail.agent_conversation(ep), [c.call() for c in mail.candidate_actions(ep)][:3]
    first = lm.score(chat, calls)
    again = lm.score(chat, calls)
    assert fresh_cache.hits == 1
    lm.output_cache = None
    try:
        uncached = lm.score(chat, calls)
    finally:
        lm.output_cache = fresh_cache
    np.testing.assert_array_equal(first, again)  # bit for bit: JSON floats round-trip exactly
    np.testing.assert_array_equal(first, uncached)


@pytest.mark.slow
def test_any_change_of_the_input_misses(lm, fresh_cache) -> None:
    import torch

    base = chats("What is the code?")
    lm.generate(base, max_new_tokens=3)
    variants = [
        lambda: lm.generate(chats("What is the code ?"), max_new_tokens=3),  # one character of the prompt
        lambda: lm.generate(base, max_new_tokens=4),
        lambda: lm.generate(base, max_new_tokens=3, temperature=0.7, seed=1),
        lambda: lm.generate(base, max_new_tokens=3, temperature=0.7, seed=2),
        lambda: lm.generate(base, max_new_tokens=3, temperature=0.8, seed=2),
        lambda: lm.generate(chats("What is the code?", "Hi"), max_new_tokens=3),  # batched with another prompt
    ]
    for make in variants:
        make()
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        lm.generate(base, max_new_tokens=3)
    finally:
        torch.set_num_threads(threads)
    assert fresh_cache.hits == 0
    assert len(entries(fresh_cache)) == len(variants) + 2
    lm.generate(base, max_new_tokens=3)
    assert fresh_cache.hits == 1, "the unchanged input still hits"


@pytest.mark.slow
def test_an_edited_model_bypasses_the_cache(lm, fresh_cache) -> None:
    import torch

    conv = chats("Hi there")
    lm.generate(conv, max_new_tokens=3)
    weight = lm.model.model.layers[3].mlp.down_proj.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.data.mul_(1.5)  # through .data: no version bump, caught by the sampled values
    try:
        assert lm._store() is None
        lm.generate(conv, max_new_tokens=3)
        assert fresh_cache.hits == 0 and len(entries(fresh_cache)) == 1, "neither read nor written"
    finally:
        with torch.no_grad():
            weight.data.copy_(saved)
    assert lm._store() is fresh_cache


@pytest.mark.slow
def test_a_read_only_cache_is_read_and_never_written(lm, fresh_cache, monkeypatch) -> None:
    convs = chats("What is the code?")
    expected = lm.generate(convs, max_new_tokens=4)  # fills the cache, as the course's warm run does

    def read_only(*args, **kwargs):  # what creating a file on a read-only mount raises (root ignores chmod)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    grader = llm.OutputCache(fresh_cache.folder)
    lm.output_cache = grader
    assert lm.generate(convs, max_new_tokens=4) == expected and grader.hits == 1
    lm.generate(convs, max_new_tokens=5)  # a miss: computed, then the write fails quietly
    assert grader.misses == 1 and not grader.writable and len(entries(grader)) == 1
    lm.output_cache = fresh_cache


@pytest.mark.slow
def test_a_missing_uncreatable_cache_folder_only_costs_time(lm, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = lm.output_cache
    lm.output_cache = llm.OutputCache(blocker / "outputs")
    try:
        replies = lm.generate(chats("Hi there"), max_new_tokens=3)
        assert replies[0] and lm.output_cache.misses == 1 and not lm.output_cache.writable
    finally:
        lm.output_cache = before


def test_writes_are_bounded_per_process_and_bad_entries_miss(tmp_path, monkeypatch) -> None:
    cache = llm.OutputCache(tmp_path)
    monkeypatch.setattr(llm, "MAX_WRITE_BYTES_PER_PROCESS", 1000)
    for i in range(20):
        cache.put(f"{i:02d}" + "0" * 62, {"new_ids": [[1] * 40]})
    written = sorted(tmp_path.glob("*/*.json"))
    assert 0 < len(written) < 20 and cache.written_bytes <= 1000
    assert sum(p.stat().st_size for p in written) == cache.written_bytes
    cache.put("ff" + "0" * 62, {"new_ids": [[1] * (llm.MAX_ENTRY_BYTES // 2)]})  # one oversized entry
    assert not (tmp_path / "ff").exists()
    key = written[0].stem
    assert cache.get(key) is not None
    written[0].write_text('{"key": "')  # half-written
    assert cache.get(key) is None
    written[0].write_text(json.dumps({"key": "something else", "new_ids": [[1]]}))  # under the wrong name
    assert cache.get(key) is None
    assert not list(tmp_path.glob("*/.*.tmp")), "no temp file left behind"
