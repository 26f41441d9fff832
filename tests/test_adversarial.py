"""Unit tests of aisec.lab03.adversarial and of lab03's visible checks (fast: a few seconds)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aisec.lab03 import adversarial as adv
from aisec.check import CheckFailed, check


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Train into a cache of this test session, never the course's."""
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path_factory.getbasetemp() / "aisec-cache"))


# ------------------------------------------------------------------------------ corpus


def test_spam_corpus_is_seeded_balanced_and_follows_its_rule():
    a, b, c = adv.spam_corpus(300, 0), adv.spam_corpus(300, 0), adv.spam_corpus(300, 1)
    assert a.texts == b.texts and np.array_equal(a.labels, b.labels)
    assert a.texts != c.texts
    assert a.labels.dtype == np.int64 and int(a.labels.sum()) == 150
    spam_phrases = [p for slot in adv._PHRASES.values() for p in slot["spam"]]
    for text, label in zip(a.texts, a.labels):
        assert text.isascii() and text == text.lower()
        hits = sum(p in text for p in spam_phrases)
        assert (hits >= 2) == (label == 1), text
    assert len(a.spam()) == 150


def test_spam_corpus_rejects_tiny_sizes():
    with pytest.raises(ValueError):
        adv.spam_corpus(5)


# ------------------------------------------------------------------------------ tokenizer


def test_tokenizer_is_deterministic_and_homoglyphs_become_unknown():
    texts = adv.spam_corpus(200, 0).texts
    t1, t2 = adv.train_tokenizer(texts), adv.train_tokenizer(texts)
    assert t1.get_vocab() == t2.get_vocab()
    assert t1.tokenize("claim your free prize") == ["claim", "your", "free", "prize"]
    disguised = "claim your fr\u0435e prize"  # Cyrillic ie
    assert t1.tokenize(disguised) == ["claim", "your", "[UNK]", "prize"]
    # an unseen ASCII word is spelled out, not lost
    assert "[UNK]" not in t1.tokenize("zebra")
    ids = t1("hi there")["input_ids"]
    assert ids[0] == t1.cls_token_id and ids[-1] == t1.sep_token_id


def test_homoglyph_table_is_confusable_and_nfkc_stable():
    seen = set()
    for latin, glyphs in adv.HOMOGLYPHS.items():
        assert latin.isascii() and latin.isalpha() and latin.islower()
        for g in glyphs:
            assert not g.isascii() and unicodedata.normalize("NFKC", g) == g and g.lower() == g
            assert g not in seen
            seen.add(g)


def test_substitutions_and_linf_distance():
    assert adv.substitutions("free", "fr\u0435e") == 1
    assert adv.substitutions("", "") == 0
    with pytest.raises(ValueError):
        adv.substitutions("free", "fre")
    x = torch.zeros(2, 3)
    assert adv.linf_distance(x, x + torch.tensor([0.1, -0.3, 0.2])) == pytest.approx(0.3)
    assert adv.linf_distance(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError):
        adv.linf_distance(torch.zeros(2), torch.zeros(3))


# ------------------------------------------------------------------------------ spam filter


def test_spam_filter_learns_caches_and_is_fooled_by_unknown_words():
    small = dict(n_train=400, epochs=3)
    f1 = adv.spam_filter(0, **small)
    test = adv.spam_corpus(200, 5)
    assert f1.accuracy(test) >= 0.9
    p = f1.spam_probability(test.texts[:7])
    assert p.shape == (7,) and p.dtype == np.float64 and np.all((p >= 0) & (p <= 1))
    assert f1.spam_probability([]).shape == (0,)
    f2 = adv.spam_filter(0, **small)  # from the cache: the same weights
    for (k, v1), v2 in zip(f1.model.state_dict().items(), f2.model.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert np.array_equal(f1.predict(test.texts), f2.predict(test.texts))


def test_spam_filter_runs_without_transformers(tmp_path):
    """The filter is plain torch and a bare ``tokenizers`` tokenizer: the lab does not pay the seconds that
    importing transformers costs (checked in a fresh interpreter, where no other test can have imported it)."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from aisec.lab03.adversarial import spam_filter\n"
        "f = spam_filter(0, n_train=200, epochs=1)\n"
        "f.spam_probability(['claim your free prize now'])\n"
        "print(json.dumps('transformers' in sys.modules))\n"
    )
    env = {**os.environ, "AISEC_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


# ------------------------------------------------------------------------------ explorer


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(len(x), -1))


def _shift(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    return (x + eps).clamp(0, 1)


def test_explore_step_describes_the_attack():
    model, x = _Linear(), torch.full((64,), 0.5)
    step = adv.explore_step(model, x, torch.tensor(3), _shift, 0.2)
    assert torch.allclose(step["delta"], torch.full((64,), 0.2))
    assert step["true"] == 3 and 0 <= step["adv_pred"] < 10 and 0.1 <= step["adv_conf"] <= 1


def test_epsilon_explorer_builds_headless_and_reacts_to_the_slider():
    import ipywidgets as widgets

    model, xs, ys = _Linear(), torch.rand(5, 64), torch.arange(5)
    box = adv.epsilon_explorer(model, xs, ys, _shift, eps=0.1, title="shift")
    assert isinstance(box, widgets.VBox)
    eps_slider, index = box.children[0].children
    status = box.children[1]
    assert "true label <b>0</b>" in status.value
    index.value = 2
    assert "true label <b>2</b>" in status.value
    eps_slider.value = 0.3

    def not_yet(*_):
        raise NotImplementedError

    stub = adv.epsilon_explorer(model, xs, ys, not_yet)
    assert "not implemented" in stub.children[1].value


# ------------------------------------------------------------------------------ lab03 visible checks


def _fgsm(model, x, t, eps):
    x = x.clone().detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), t), x)
    return (x - eps * g.sign()).clamp(0, 1).detach()


def _fgsm_wrong_sign(model, x, t, eps):  # the lesson's untargeted step, aimed at the target: moves away from it
    x = x.clone().detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), t), x)
    return (x + eps * g.sign()).clamp(0, 1).detach()


def _fgsm_no_clip(model, x, t, eps):
    x = x.clone().detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), t), x)
    return (x - eps * g.sign()).detach()


def _stub(*args, **kwargs):
    raise NotImplementedError()


def _passes(question, answer, capsys):
    check(question, answer)
    out = capsys.readouterr().out
    assert "✘" not in out, out
    return out


def _failures(question, answer, capsys):
    with pytest.raises(CheckFailed):
        check(question, answer)
    return capsys.readouterr().out


def test_targeted_fgsm_check_passes_a_correct_targeted_fgsm(capsys):
    assert "lab03.q1: 8/8 visible checks passed" in _passes("lab03.q1", _fgsm, capsys)


def test_targeted_fgsm_check_explains_the_wrong_gradient_sign(capsys):
    out = _failures("lab03.q1", _fgsm_wrong_sign, capsys)
    assert "✘ lowers the loss of the target class (gradient sign)" in out
    assert "should go DOWN" in out and "untargeted FGSM of the lesson" in out
    assert "✘ the target class on ≥ 40% of digits at ε = 0.2" in out


def test_fgsm_check_explains_missing_clipping(capsys):
    out = _failures("lab03.q1", _fgsm_no_clip, capsys)
    assert "✘ keeps pixels in [0, 1] (clipping)" in out
    assert "outside [0, 1]" in out and "Clip" in out


@pytest.mark.parametrize("question", ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9"])
def test_every_check_fails_on_the_untouched_stub(question, capsys):
    out = _failures(f"lab03.{question}", _stub, capsys)
    assert "not answered yet" in out


def test_text_checks_judge_evasion_and_normalisation(capsys):
    def greedy(text, score, budget, homoglyphs=adv.HOMOGLYPHS):
        cur, p = text, float(score([text])[0])
        for _ in range(budget):
            if p < 0.5:
                break
            cands = [cur[:i] + g + cur[i + 1 :] for i, ch in enumerate(cur) for g in homoglyphs.get(ch, ())]
            ps = np.asarray(score(cands)) if cands else np.zeros(0)
            if not cands or ps.min() >= p:
                break
            cur, p = cands[int(ps.argmin())], float(ps.min())
        return cur

    def spend_all(text, score, budget, homoglyphs=adv.HOMOGLYPHS):
        out = list(text)
        for i, ch in enumerate(text):
            if budget and ch in homoglyphs:
                out[i], budget = homoglyphs[ch][0], budget - 1
        return "".join(out)

    assert "3/3 visible checks passed" in _passes("lab03.q5", greedy, capsys)
    assert "fewest edits" in _failures("lab03.q5", spend_all, capsys)

    reverse = {g: k for k, gs in adv.HOMOGLYPHS.items() for g in gs}

    def normalise(text):
        text = unicodedata.normalize("NFKC", text)
        return "".join(reverse.get(c, c) for c in text if unicodedata.category(c) != "Cf")

    assert "2/2 visible checks passed" in _passes("lab03.q7", normalise, capsys)
    out = _failures("lab03.q7", lambda t: unicodedata.normalize("NFKC", t).lower(), capsys)
    assert "keep the case" in out or "zero-width" in out


def test_metrics_check_catches_success_rate_over_all_inputs(capsys):
    def metrics(model, x, y, x_adv):
        with torch.no_grad():
            pc, pa = model(x).argmax(1), torch.softmax(model(x_adv), 1)
        return {
            "clean_accuracy": float((pc == y).float().mean()),
            "adv_accuracy": float((pa.argmax(1) == y).float().mean()),
            "success_rate": float((pa.argmax(1) != y).float().mean()),  # wrong: counts the model's own mistakes
            "mean_confidence": float(pa.max(1).values.mean()),
        }

    out = _failures("lab03.q3", metrics, capsys)
    assert "success_rate" in out and "before" in out


def test_check_messages_use_the_right_article_and_number(capsys):
    from aisec.check import counted, expect_type

    with pytest.raises(AssertionError, match="should be an int, got a float"):
        expect_type(1.0, int, "k")
    assert (counted(1, "character"), counted(2, "query", "queries")) == ("1 character", "2 queries")

    def one_edit_always(text, score, budget, homoglyphs=adv.HOMOGLYPHS):
        return text.replace("e", homoglyphs["e"][0], 1)

    out = _failures("lab03.q5", one_edit_always, capsys)
    assert "1 character changed with an edit budget of 0" in out


# ------------------------------------------------------------------------------ q4 and q6: every stated rule


def _untrained(x_pool, query_labels, seed):
    return nn.Linear(64, 10)  # unseeded initialisation: another surrogate on every call


def test_surrogate_check_wants_one_call_and_a_seeded_surrogate(capsys):
    def per_image(x_pool, query_labels, seed):
        [query_labels(x_pool[i : i + 1]) for i in range(len(x_pool))]
        torch.manual_seed(seed)
        return nn.Linear(64, 10)

    out = _failures("lab03.q4", per_image, capsys)
    assert "query_labels was called 270 times" in out and "one call" in out
    out = _failures("lab03.q4", _untrained, capsys)
    assert "✘ the same seed gives the same surrogate, another seed another" in out and "torch.manual_seed(seed)" in out


pgd = _stub  # the notebook's pgd (Q2) as the checks find it by name; they swap in a stand-in


def _make_loss(fresh_seed=True, use_attack=True):
    def make_adversarial_loss(eps, alpha, steps, seed, attack=None):
        calls = {"n": 0}

        def loss_fn(model, xb, yb):
            calls["n"] += 1
            craft = pgd if attack is None or not use_attack else attack
            x_adv = craft(model, xb, yb, eps, alpha, steps, seed=seed + calls["n"] if fresh_seed else seed)
            return F.cross_entropy(model(x_adv), yb)

        return loss_fn

    return make_adversarial_loss


def test_adversarial_loss_check_passes_without_warnings_and_checks_seeds_and_attack(capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a correct answer's check emits no warning (it once converted a graph tensor)
        assert "lab03.q6: 3/3 visible checks passed" in _passes("lab03.q6", _make_loss(), capsys)
    out = _failures("lab03.q6", _make_loss(fresh_seed=False), capsys)
    assert "✘ a fresh attack seed for every call" in out and "[0, 0, 0]" in out
    out = _failures("lab03.q6", _make_loss(use_attack=False), capsys)
    assert "✘ the cross-entropy on the given attack's examples" in out and "not answered yet" in out
    assert pgd is _stub, "the stand-in for pgd is removed after the check"


# ------------------------------------------------------------------- q8 restoration, q9 BPDA


def _quantise(x, n):
    return torch.round(x * (n - 1)) / (n - 1)


def _restorer(prefer_fewer=False, ignore_clean=False):
    def fit_restorer(model, x_val, y_val, attack, levels=(2, 3, 4, 5, 6, 8), max_clean_drop=0.02):
        def acc(x):
            with torch.no_grad():
                return float((model(x).argmax(1) == y_val).float().mean())

        xa = attack(model, x_val, y_val)
        floor = acc(x_val) - max_clean_drop
        kept = [(acc(_quantise(xa, n)), -n if prefer_fewer else n) for n in levels
                if ignore_clean or acc(_quantise(x_val, n)) >= floor]
        best = abs(max(kept)[1]) if kept else max(levels)
        return lambda x: _quantise(x, best)

    return fit_restorer


def test_restorer_rule_expectations_are_what_the_rule_gives():
    """The q8 check's written-out levels (8 with no attack, 5 in the tie of (3, 5), 3 against its fixed PGD)
    recomputed here, and the tie is a real one."""
    from aisec.lab03 import checks

    model, x, y = checks._fixture()
    every = (2, 3, 4, 5, 6, 8)
    cases = ((checks._no_attack, every, 0.02, 8), (checks._no_attack, (3, 5), 0.02, 5),
             (checks._grid_pgd, every, 0.02, 3), (checks._grid_pgd, (3, 6), -1.0, 6), (checks._grid_pgd, (3, 6), 0.02, 3))
    for attack, levels, drop, want in cases:
        restore = _restorer()(model, x, y, attack, levels, drop)
        assert len(torch.unique(restore(checks._RAMP))) == want
    with torch.no_grad():
        read = [float((model(_quantise(x, n)).argmax(1) == y).float().mean()) for n in (3, 5)]
    assert read[0] == read[1]


def test_restorer_checks_pass_the_rule_and_catch_its_breaches(capsys):
    assert "lab03.q8: 4/4 visible checks passed" in _passes("lab03.q8", _restorer(), capsys)
    out = _failures("lab03.q8", _restorer(prefer_fewer=True), capsys)
    assert "✘ picks the levels by the rule" in out and "ties: more levels" in out

    def twice(model, x_val, y_val, attack, levels=(2, 3, 4, 5, 6, 8), max_clean_drop=0.02):
        attack(model, x_val, y_val)
        return _restorer()(model, x_val, y_val, attack, levels, max_clean_drop)

    assert "called 2 times" in _failures("lab03.q8", twice, capsys)

    def best_when_none_kept(model, x_val, y_val, attack, levels=(2, 3, 4, 5, 6, 8), max_clean_drop=0.02):
        return _restorer(ignore_clean=True)(model, x_val, y_val, attack, levels, max_clean_drop)

    assert "none kept: the largest" in _failures("lab03.q8", best_when_none_kept, capsys)
    out = _failures("lab03.q8", lambda model, x, y, attack, **kw: (lambda z: z), capsys)
    assert "✘ restore rounds to one of the candidate grids" in out


def _bpda(straight_through=True):
    def bpda_pgd(model, restore, x, y, eps, alpha, steps, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = x.detach()
        xa = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            xa.requires_grad_(True)
            z = xa + (restore(xa) - xa).detach() if straight_through else restore(xa)
            (gr,) = torch.autograd.grad(F.cross_entropy(model(z), y), xa, allow_unused=True)
            gr = torch.zeros_like(xa) if gr is None else gr
            xa = torch.min(torch.max(xa.detach() + alpha * gr.sign(), x - eps), x + eps).clamp(0, 1)
        return xa.detach()

    return bpda_pgd


def test_bpda_checks_pass_bpda_and_explain_the_masked_gradient(capsys):
    assert "lab03.q9: 4/4 visible checks passed" in _passes("lab03.q9", _bpda(), capsys)
    out = _failures("lab03.q9", _bpda(straight_through=False), capsys)
    assert "✘ breaks the quantised reader" in out and "zero gradient" in out and "(restore(x) - x).detach()" in out
