"""Visible checks for lab03 (adversarial examples). Students may read this file.

Each check tests a *property* that a correct answer has and a common mistake lacks, and says
why when it fails. None computes the answer itself: the fixtures are the lab's own target
model (seed 0, cached) and tiny hand-made models whose right answers follow from arithmetic.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.lab03.adversarial import HOMOGLYPHS, substitutions
from aisec.check import Check, counted, expect_type, stand_ins

# ------------------------------------------------------------------------------ fixtures


@lru_cache(maxsize=1)
def _fixture() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The lab's target (digits MLP, seed 0, from the cache) and 200 test digits."""
    from aisec.data import digits
    from aisec.models import digits_classifier

    data = digits(0)
    model = digits_classifier(data.x_train, data.y_train, seed=0)
    return model, torch.as_tensor(data.x_test[:200]), torch.as_tensor(data.y_test[:200])


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _expect_image_batch(x_adv: Any, x: torch.Tensor, what: str) -> torch.Tensor:
    expect_type(x_adv, torch.Tensor, what)
    if x_adv.shape != x.shape:
        raise AssertionError(f"{what} has shape {tuple(x_adv.shape)}; it must keep the input's shape {tuple(x.shape)}")
    if x_adv.dtype != torch.float32:
        raise AssertionError(f"{what} has dtype {x_adv.dtype}; keep float32 like the input")
    if not torch.isfinite(x_adv).all():
        raise AssertionError(f"{what} contains NaN or inf")
    return x_adv.detach()


def _expect_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    worst = float((x_adv - x).abs().max())
    if worst > eps + 1e-5:
        raise AssertionError(
            f"a pixel moved by {worst:.3f} > ε = {eps}: the perturbation must stay inside the L∞ ball "
            "of radius ε around x (for PGD: project back with a clamp to [x - ε, x + ε] after every step)"
        )


def _expect_valid_pixels(x_adv: torch.Tensor) -> None:
    lo, hi = float(x_adv.min()), float(x_adv.max())
    if lo < 0.0 or hi > 1.0:
        raise AssertionError(
            f"pixel values range over [{lo:.3f}, {hi:.3f}], outside [0, 1]: no real image has such pixels, so the "
            "attack must stay in the valid range. Clip (torch.clamp(x_adv, 0, 1)) after the step — FGSM without "
            "clipping is a wrong FGSM"
        )


# ------------------------------------------------------------------------------ q1 targeted FGSM


def _targets(y: torch.Tensor) -> torch.Tensor:
    """The visible checks' target classes: the next digit ((y + 1) mod 10), never the true one."""
    return (y + 1) % 10


def _fgsm_type(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    _expect_image_batch(fgsm_targeted(model, x, _targets(y), 0.1), x, "fgsm_targeted(model, x, target, 0.1)")


def _fgsm_no_side_effects(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    before = x.clone()
    fgsm_targeted(model, x, _targets(y), 0.1)
    if not torch.equal(before, x):
        raise AssertionError("fgsm_targeted changed its input x in place; work on a copy (x.clone().detach())")


def _fgsm_ball(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    for eps in (0.05, 0.2):
        _expect_in_ball(fgsm_targeted(model, x, _targets(y), eps).detach(), x, eps)


def _fgsm_range(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    # Digits have many pixels at exactly 0 and 1: an unclipped step leaves [0, 1] at once.
    _expect_valid_pixels(fgsm_targeted(model, x, _targets(y), 0.2).detach())


def _fgsm_sign(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    t = _targets(y)
    x_adv = fgsm_targeted(model, x, t, 0.1).detach()
    clean, adv = _loss(model, x, t), _loss(model, x_adv, t)
    if not adv < clean:
        raise AssertionError(
            f"the cross-entropy towards the target class went from {clean:.3f} to {adv:.3f}: it should go DOWN. "
            "A targeted attack descends the loss of the *target* label: x - ε·sign(∇x L(f(x), t)). Stepping up "
            "(+ε) or using the true labels y gives the untargeted FGSM of the lesson"
        )


def _fgsm_full_step(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    eps = 0.1
    x_adv = fgsm_targeted(model, x, _targets(y), eps).detach()
    delta = (x_adv - x).abs()
    full = (delta - eps).abs() < 1e-5
    at_bound = (x_adv <= 1e-6) | (x_adv >= 1 - 1e-6)
    share = float((full | at_bound).float().mean())
    if share < 0.9:
        raise AssertionError(
            f"only {share:.0%} of the pixels moved by exactly ε (or hit 0/1): FGSM takes the *sign* of the gradient, "
            "so every pixel moves by the full ε. Did you step along the raw gradient instead?"
        )


def _fgsm_zero(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    if not torch.allclose(fgsm_targeted(model, x, _targets(y), 0.0).detach(), x):
        raise AssertionError("with ε = 0 the attack must return the input unchanged")


def _fgsm_hits_target(fgsm_targeted: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    t = _targets(y)
    hit = _acc(model, fgsm_targeted(model, x, t, 0.2).detach(), t)
    if hit < 0.4:
        raise AssertionError(f"at ε = 0.2 the target reads the chosen class on {hit:.0%} of the digits; a correct "
                             "targeted FGSM reaches more than 40%")


# ------------------------------------------------------------------------------ q2 PGD


def _pgd_run(pgd: Callable[..., Any], eps: float = 0.1, steps: int = 10, seed: int = 0) -> torch.Tensor:
    model, x, y = _fixture()
    return pgd(model, x, y, eps, eps / 4, steps, seed)


def _pgd_type(pgd: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    _expect_image_batch(_pgd_run(pgd), x, "pgd(model, x, y, 0.1, 0.025, 10, 0)")


def _pgd_ball_range(pgd: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    for eps in (0.05, 0.2):
        x_adv = _pgd_run(pgd, eps=eps).detach()
        _expect_in_ball(x_adv, x, eps)
        _expect_valid_pixels(x_adv)


def _pgd_random_start(pgd: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    a, b = _pgd_run(pgd, steps=0, seed=0).detach(), _pgd_run(pgd, steps=0, seed=1).detach()
    if torch.allclose(a, x):
        raise AssertionError("with steps=0 PGD should return the random start, but it returned x: add a uniform "
                             "random start in [-ε, ε] (then clip to [0, 1])")
    if torch.allclose(a, b):
        raise AssertionError("two seeds gave the same random start: draw it with torch.Generator().manual_seed(seed)")
    if not torch.equal(_pgd_run(pgd, seed=3).detach(), _pgd_run(pgd, seed=3).detach()):
        raise AssertionError("the same seed gave different results: draw the random start from a seeded generator")


def _pgd_sign(pgd: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    adv = _loss(model, _pgd_run(pgd).detach(), y)
    clean = _loss(model, x, y)
    if not adv > clean:
        raise AssertionError(f"PGD lowered the loss ({clean:.3f} → {adv:.3f}): each step must ascend the loss "
                             "(x + α·sign(∇x loss))")


def _pgd_more_steps(pgd: Callable[..., Any]) -> None:
    model, _, y = _fixture()
    one = _loss(model, _pgd_run(pgd, steps=1).detach(), y)
    many = _loss(model, _pgd_run(pgd, steps=20).detach(), y)
    if many < one - 1e-3:
        raise AssertionError(f"20 steps gave a lower loss ({many:.3f}) than 1 step ({one:.3f}): the iterations are "
                             "not building on each other (update x_adv, not x, at every step)")


def _pgd_strong(pgd: Callable[..., Any]) -> None:
    model, _, y = _fixture()
    acc = _acc(model, _pgd_run(pgd, eps=0.2, steps=20).detach(), y)
    if acc > 0.1:
        raise AssertionError(f"accuracy under your PGD at ε = 0.2 is {acc:.0%}; a correct PGD brings it below 10%")


# ------------------------------------------------------------------------------ q3 metrics


def _toy_case() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 2-class identity 'model' whose logits are its inputs, so every number is arithmetic:
    clean predictions [0, 1, 0, 1] vs labels [0, 1, 1, 1] (3/4 right); adversarial predictions
    [1, 1, 0, 0] (1/4 right); of the 3 clean-correct inputs, 2 are now wrong (2/3); every
    adversarial input gets softmax([4, 0]) = 0.98201 confidence in its prediction."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 1, 1, 1])
    x_adv = torch.tensor([[0.0, 4.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    return model, x, y, x_adv


_METRIC_KEYS = ("clean_accuracy", "adv_accuracy", "success_rate", "mean_confidence")


def _metrics_types(attack_metrics: Callable[..., Any]) -> None:
    model, x, y, x_adv = _toy_case()
    out = attack_metrics(model, x, y, x_adv)
    expect_type(out, dict, "attack_metrics(...)")
    if set(out) != set(_METRIC_KEYS):
        raise AssertionError(f"the dict's keys should be exactly {list(_METRIC_KEYS)}, got {sorted(out)}")
    for k in _METRIC_KEYS:
        expect_type(out[k], float, f"out[{k!r}]")


def _metrics_toy(attack_metrics: Callable[..., Any]) -> None:
    model, x, y, x_adv = _toy_case()
    out = attack_metrics(model, x, y, x_adv)
    expected = {"clean_accuracy": 0.75, "adv_accuracy": 0.25, "success_rate": 2 / 3, "mean_confidence": 0.98201}
    for k, v in expected.items():
        if abs(out[k] - v) > 1e-4:
            hint = {
                "success_rate": "count only inputs the model got right *before* the attack, and among those the share "
                "it gets wrong after",
                "mean_confidence": "average, over the adversarial inputs, the softmax probability of the class the "
                "model predicts (its confidence), not of the true class",
            }.get(k, "compare argmax predictions with the labels")
            raise AssertionError(f"on a 4-example toy case {k} is {out[k]:.4f}, expected {v:.4f}: {hint}")


def _metrics_identity(attack_metrics: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    out = attack_metrics(model, x, y, x.clone())
    if out["success_rate"] != 0.0 or out["adv_accuracy"] != out["clean_accuracy"]:
        raise AssertionError("when x_adv is x the attack changed nothing: success_rate must be 0.0 and adv_accuracy "
                             "equal to clean_accuracy")


# ------------------------------------------------------------------------------ q4 surrogate


class _CountingOracle:
    """A label-only black box around the target that counts its calls and the images it was asked about."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.queries = 0
        self.calls = 0

    def __call__(self, x: Any) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.calls += 1
        self.queries += len(xt)
        with torch.no_grad():
            return self.model(xt).argmax(1).numpy()


def _surrogate_fit(train_surrogate: Callable[..., Any]) -> None:
    from aisec.data import digits

    model, _, _ = _fixture()
    data = digits(0)
    pool, held = data.x_test[:270], data.x_test[270:]
    oracle = _CountingOracle(model)
    surrogate = train_surrogate(pool, oracle, 0)
    if not isinstance(surrogate, nn.Module):
        raise AssertionError(f"train_surrogate should return a torch nn.Module, got {type(surrogate).__name__}")
    if surrogate is model:
        raise AssertionError("that is the target itself: the attacker has no access to it, only to its labels")
    if oracle.queries == 0:
        raise AssertionError("the oracle was never queried: label the attacker's pool with query_labels(x_pool)")
    if oracle.queries > len(pool):
        raise AssertionError(f"{counted(oracle.queries, 'query', 'queries')} for a pool of {len(pool)} images: query "
                             "each image once")
    if oracle.calls != 1:
        raise AssertionError(f"query_labels was called {counted(oracle.calls, 'time')}: label the whole pool with one "
                             "call, query_labels(x_pool) (each call to a real API costs a round trip and shows up "
                             "in its logs)")
    with torch.no_grad():
        xt = torch.as_tensor(held)
        agree = float((surrogate(xt).argmax(1) == model(xt).argmax(1)).float().mean())
    if agree < 0.8:
        raise AssertionError(f"the surrogate agrees with the target on {agree:.0%} of new digits; train it until it "
                             "agrees on at least 80% (more epochs, or a wider network)")


def _weights(model: Any) -> list[torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise AssertionError(f"train_surrogate should return a torch nn.Module, got {type(model).__name__}")
    return [v.detach().clone() for v in model.state_dict().values()]


def _surrogate_seeded(train_surrogate: Callable[..., Any]) -> None:
    from aisec.data import digits

    model, _, _ = _fixture()
    pool = digits(0).x_test[:40]  # a small pool: three short trainings
    first = _weights(train_surrogate(pool, _CountingOracle(model), 0))
    again = _weights(train_surrogate(pool, _CountingOracle(model), 0))
    other = _weights(train_surrogate(pool, _CountingOracle(model), 1))
    if len(first) != len(again) or not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, again)):
        raise AssertionError("two calls with the same seed gave different surrogates: seed the initialisation "
                             "(torch.manual_seed(seed) before building the MLP) and pass seed to train_classifier")
    if len(first) == len(other) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, other)):
        raise AssertionError("seeds 0 and 1 gave the same surrogate: use the seed argument, not a fixed seed")


# ------------------------------------------------------------------------------ q5 text evasion


def _toy_scorer(texts: list[str]) -> np.ndarray:
    """A keyword filter: 0.1, plus 0.4 for each of the words "free" and "prize" present.
    It blocks (score >= 0.5) while either word is intact."""
    return np.array([0.1 + 0.4 * len({"free", "prize"} & set(t.split())) for t in texts])


def _evade_shape(evade_text: Callable[..., Any]) -> None:
    text = "claim your free prize now"
    out = evade_text(text, _toy_scorer, 4, HOMOGLYPHS)
    expect_type(out, str, "evade_text(...)")
    if len(out) != len(text):
        raise AssertionError("the result must have the same length: substitute characters, don't insert or delete")


def _evade_rules(evade_text: Callable[..., Any]) -> None:
    text = "claim your free prize now"
    for budget in (0, 1, 4):
        out = evade_text(text, _toy_scorer, budget, HOMOGLYPHS)
        used = substitutions(text, out)
        if used > budget:
            raise AssertionError(f"{counted(used, 'character')} changed with an edit budget of {budget}")
        for a, b in zip(text, out):
            if a != b and b not in HOMOGLYPHS.get(a, ()):
                raise AssertionError(f"{a!r} was replaced by {b!r}, which is not one of its homoglyphs")


def _evade_works(evade_text: Callable[..., Any]) -> None:
    text = "claim your free prize now"
    out = evade_text(text, _toy_scorer, 4, HOMOGLYPHS)
    if _toy_scorer([out])[0] >= 0.5:
        raise AssertionError("on a filter that only counts the words 'free' and 'prize', 4 substitutions should "
                             "evade it (one homoglyph in each word)")
    if substitutions(text, out) != 2:
        raise AssertionError(f"evading that filter takes exactly 2 substitutions but you used {substitutions(text, out)}: "
                             "stop as soon as the score drops below 0.5, and keep a substitution only if it lowers "
                             "the score")


# ------------------------------------------------------------------------------ q6 adversarial training


class _CornerAttack:
    """A stand-in for the attack (not PGD: a seeded random corner of the ε-ball, no gradient), so that Q6 is
    checked on its own whatever Q2's pgd does. It records the arguments of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, int, Any]] = []

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                 seed: Any = None) -> torch.Tensor:
        self.calls.append((eps, alpha, steps, seed))
        generator = torch.Generator().manual_seed(int(seed) if isinstance(seed, (int, np.integer)) else 0)
        signs = torch.randint(0, 2, x.shape, generator=generator) * 2 - 1
        return (x.detach() + eps * signs).clamp(0.0, 1.0)

    @property
    def seeds(self) -> list[Any]:
        return [call[3] for call in self.calls]


def _advloss(make_adversarial_loss: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    xb, yb = x[:64], y[:64]
    attack = _CornerAttack()
    loss_fn = make_adversarial_loss(0.1, 0.025, 5, 0, attack=attack)
    if not callable(loss_fn):
        raise AssertionError("make_adversarial_loss should return a function loss_fn(model, xb, yb)")
    loss = loss_fn(model, xb, yb)
    expect_type(loss, torch.Tensor, "loss_fn(model, xb, yb)")
    if loss.ndim != 0:
        raise AssertionError(f"the loss should be a scalar tensor, got shape {tuple(loss.shape)}")
    if len(attack.calls) != 1:
        raise AssertionError(f"the attack passed as `attack` was called {counted(len(attack.calls), 'time')} for one "
                             "batch: call it once per loss_fn call (and call no other attack)")
    if attack.calls[0][:3] != (0.1, 0.025, 5):
        raise AssertionError(f"the attack got (eps, alpha, steps) = {attack.calls[0][:3]}; pass on (0.1, 0.025, 5)")
    if not loss.requires_grad:
        raise AssertionError("the loss does not depend on the model's weights (did you compute it under no_grad?)")
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(_CornerAttack()(model, xb, yb, 0.1, 0.025, 5,
                                                                          attack.calls[0][3])), yb))
    if abs(float(loss.detach()) - expected) > 1e-5:
        raise AssertionError(f"the loss is {float(loss.detach()):.4f}; the mean cross-entropy of the model on the "
                             f"attack's examples is {expected:.4f}: train on attack(model, xb, yb, ...), not on xb")
    model.zero_grad()
    loss.backward()
    if all(p.grad is None or not bool(p.grad.abs().sum() > 0) for p in model.parameters()):
        raise AssertionError("back-propagating the loss gave the model no gradient")
    model.zero_grad()


def _advloss_seeds(make_adversarial_loss: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    runs = []
    for seed in (0, 0, 100):
        attack = _CornerAttack()
        loss_fn = make_adversarial_loss(0.1, 0.025, 5, seed, attack=attack)
        for _ in range(3):
            loss_fn(model, x[:16], y[:16])
        runs.append(attack.seeds)
    model.zero_grad()
    same, again, other = runs
    if not all(isinstance(s, (int, np.integer)) for s in same):
        raise AssertionError(f"the attack got the seeds {same}: pass an int seed (seed=...) on every call")
    if len(set(int(s) for s in same)) != len(same):
        raise AssertionError(f"three batches got the attack seeds {same}: use a fresh seed for every call (e.g. a "
                             "counter added to seed), so the random starts differ between batches")
    if same != again:
        raise AssertionError(f"two losses made with seed 0 gave the attack the seeds {same} and {again}: derive "
                             "the seeds from `seed` alone, so that training is reproducible")
    if same == other:
        raise AssertionError("seeds 0 and 100 gave the attack the same seeds: derive them from `seed`")


def _advloss_default(make_adversarial_loss: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    attack = _CornerAttack()
    with stand_ins(make_adversarial_loss, pgd=attack):  # a stand-in for your pgd (Q2), looked up by name
        make_adversarial_loss(0.1, 0.025, 5, 0)(model, x[:16], y[:16])
    model.zero_grad()
    if len(attack.calls) != 1:
        raise AssertionError("without an `attack` argument the loss must craft its examples with pgd (Q2), looked up "
                             "when the loss is called (attack=None, then `pgd if attack is None else attack`)")


# ------------------------------------------------------------------------------ q7 normalisation


def _norm_cases(normalise: Callable[..., Any]) -> None:
    cases = {
        "\uff46\uff52\uff45\uff45 prize": ("free prize", "fullwidth letters survive: apply unicodedata.normalize('NFKC', ...)"),
        "fr\u200bee pri\u200dze": ("free prize", "zero-width characters survive: drop every character whose "
                                   "unicodedata.category is 'Cf'"),
        "Free PRIZE, Now!": ("Free PRIZE, Now!", "ordinary text must come back unchanged (keep the case)"),
    }
    for text, (want, hint) in cases.items():
        got = normalise(text)
        expect_type(got, str, f"normalise({text!r})")
        if got != want:
            raise AssertionError(f"normalise({text!r}) gave {got!r}, expected {want!r}: {hint}")


def _norm_homoglyphs(normalise: Callable[..., Any]) -> None:
    for latin, glyphs in HOMOGLYPHS.items():
        for g in glyphs:
            got = normalise(f"x{g}x")
            if got != f"x{latin}x":
                raise AssertionError(f"{g!r} ({unicodedata.name(g)}) came back as {got[1:-1]!r}; map every "
                                     f"homoglyph in HOMOGLYPHS back to its Latin letter ({latin!r})")


# ------------------------------------------------------------------- q8 restoration by quantisation

_RAMP = torch.linspace(0.0, 1.0, 65)[None, :64].contiguous()  # every grey level an input can have, in one row
_CANDIDATE_LEVELS = (2, 3, 4, 5, 6, 8)


def _no_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x.clone()


def _restorer(fit_restorer: Callable[..., Any], attack: Callable[..., Any] = _no_attack) -> Callable[..., Any]:
    model, x, y = _fixture()
    restore = fit_restorer(model, x, y, attack)
    if not callable(restore):
        raise AssertionError(f"fit_restorer should return a function restore(x), got "
                             f"{type(restore).__name__}")
    return restore


def _restore_shape(fit_restorer: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    out = _expect_image_batch(_restorer(fit_restorer)(x), x, "restore(x)")
    _expect_valid_pixels(out)


def _restore_is_quantiser(fit_restorer: Callable[..., Any]) -> None:
    restore = _restorer(fit_restorer)
    out = restore(_RAMP).detach()
    values = sorted(set(np.round(out.flatten().double().numpy(), 6).tolist()))
    grids = {n: [round(k / (n - 1), 6) for k in range(n)] for n in _CANDIDATE_LEVELS}
    if values not in grids.values():
        raise AssertionError(f"restore maps the 65 grey levels to {counted(len(values), 'value')}; it should round "
                             "every pixel to the nearest of n evenly spaced levels k/(n-1), for one n of `levels`")
    if not torch.equal(restore(out).detach(), out):
        raise AssertionError("restoring twice should change nothing (quantisation is idempotent)")


def _restore_attack_once(fit_restorer: Callable[..., Any]) -> None:
    calls = []

    def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.clone()

    _restorer(fit_restorer, attack)
    if calls != [200]:
        raise AssertionError(f"the attack was called {counted(len(calls), 'time')}; call attack(model, x_val, y_val) "
                             "once, on the whole validation set, and score every level on those examples")


def _restore_rule(fit_restorer: Callable[..., Any]) -> None:
    # Expectations written out for the lab's target (seed 0) and its first 200 test digits; a test in
    # tests/ recomputes them. With no attack and the candidates (3, 5), both read the same share of digits:
    # the tie goes to 5. A negative max_clean_drop keeps no candidate: the largest n, not the best under attack.
    model, x, y = _fixture()
    for attack, levels, drop, want, what in (
        (_no_attack, _CANDIDATE_LEVELS, 0.02, 8, "an attack that changes nothing"),
        (_no_attack, (3, 5), 0.02, 5, "an attack that changes nothing, with levels=(3, 5) (a tie)"),
        (_grid_pgd, _CANDIDATE_LEVELS, 0.02, 3, "PGD at ε = 0.1 (a fixed stand-in attack)"),
        (_grid_pgd, (3, 6), -1.0, 6, "that PGD with levels=(3, 6) and max_clean_drop=-1 (no candidate kept)"),
    ):
        restore = fit_restorer(model, x, y, attack, levels=levels, max_clean_drop=drop)
        if not callable(restore):
            raise AssertionError(f"fit_restorer should return a function restore(x), got {type(restore).__name__}")
        out = restore(_RAMP).detach()
        got = len(set(np.round(out.flatten().double().numpy(), 6).tolist()))
        if got != want:
            raise AssertionError(f"against {what} your restorer quantises to {counted(got, 'level')}, the rule picks "
                                 f"{want}: among the levels whose clean accuracy drops by at most max_clean_drop, take "
                                 "the one with the best accuracy on the attacked validation digits (ties: more levels; none kept: the "
                                 "largest)")


def _grid_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A fixed attack for the checks: PGD-20 at ε = 0.1, no random start (not the Q2 answer's signature)."""
    moved = x.clone()
    for _ in range(20):
        moved = moved.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(moved), y), moved)
        moved = torch.min(torch.max(moved.detach() + 0.025 * grad.sign(), x - 0.1), x + 0.1).clamp(0, 1)
    model.zero_grad()
    return moved.detach()


# ------------------------------------------------------------------------ q9 BPDA on the quantiser


def _quantiser(levels: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The defence the checks attack: round every pixel to the nearest of ``levels`` grey levels."""
    return lambda x: torch.round(x * (levels - 1)) / (levels - 1)


def _bpda_run(bpda_pgd: Callable[..., Any], restore: Callable[..., Any], eps: float = 0.2) -> torch.Tensor:
    model, x, y = _fixture()
    return bpda_pgd(model, restore, x, y, eps, eps / 4, 20, 0)


def _bpda_type(bpda_pgd: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    _expect_image_batch(_bpda_run(bpda_pgd, _quantiser(5)), x, "bpda_pgd(model, restore, x, y, 0.2, 0.05, 20, 0)")


def _bpda_ball_range(bpda_pgd: Callable[..., Any]) -> None:
    _, x, _ = _fixture()
    x_adv = _bpda_run(bpda_pgd, _quantiser(5), 0.1).detach()
    _expect_in_ball(x_adv, x, 0.1)
    _expect_valid_pixels(x_adv)


def _bpda_uses_restore(bpda_pgd: Callable[..., Any]) -> None:
    calls = []
    five_levels = _quantiser(5)

    def restore(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return five_levels(x)

    _bpda_run(bpda_pgd, restore)
    if len(calls) < 20:
        raise AssertionError(f"restore was called {counted(len(calls), 'time')} in 20 steps: every step must attack "
                             "the defended reader model(restore(x)), not the bare model")


def _bpda_breaks_quantiser(bpda_pgd: Callable[..., Any]) -> None:
    model, x, y = _fixture()
    for levels, most in ((5, 0.1), (3, 0.3)):
        quantise = _quantiser(levels)
        acc = _acc(model, quantise(_bpda_run(bpda_pgd, quantise).detach()), y)
        if acc > most:
            raise AssertionError(
                f"the reader behind a {levels}-level quantiser still reads {acc:.0%} of your ε = 0.2 digits (a correct "
                f"BPDA attack: at most {most:.0%}). torch.round has a zero gradient almost everywhere, so a plain "
                "gradient through restore is zero; pass it straight through: x + (restore(x) - x).detach()"
            )


CHECKS: dict[str, list[Check]] = {
    "q1": [
        Check("returns a float32 tensor of the input's shape", _fgsm_type),
        Check("leaves the input untouched", _fgsm_no_side_effects),
        Check("stays inside the ε-ball", _fgsm_ball),
        Check("keeps pixels in [0, 1] (clipping)", _fgsm_range),
        Check("lowers the loss of the target class (gradient sign)", _fgsm_sign),
        Check("moves every pixel by the full ε (sign step)", _fgsm_full_step),
        Check("ε = 0 changes nothing", _fgsm_zero),
        Check("the target class on ≥ 40% of digits at ε = 0.2", _fgsm_hits_target),
    ],
    "q2": [
        Check("returns a float32 tensor of the input's shape", _pgd_type),
        Check("stays inside the ε-ball and in [0, 1]", _pgd_ball_range),
        Check("seeded uniform random start", _pgd_random_start),
        Check("raises the loss", _pgd_sign),
        Check("more steps are not weaker", _pgd_more_steps),
        Check("accuracy ≤ 10% at ε = 0.2", _pgd_strong),
    ],
    "q3": [
        Check("returns a dict of four floats", _metrics_types),
        Check("right numbers on a 4-example toy case", _metrics_toy),
        Check("no attack, no success", _metrics_identity),
    ],
    "q4": [
        Check("a surrogate trained from one call of label queries agrees with the target", _surrogate_fit),
        Check("the same seed gives the same surrogate, another seed another", _surrogate_seeded),
    ],
    "q5": [
        Check("returns a string of the same length", _evade_shape),
        Check("respects the edit budget and the homoglyph table", _evade_rules),
        Check("evades a keyword filter with the fewest edits", _evade_works),
    ],
    "q6": [
        Check("the cross-entropy on the given attack's examples, differentiable (a stand-in attack)", _advloss),
        Check("a fresh attack seed for every call, the same seeds for the same seed", _advloss_seeds),
        Check("without `attack`, the examples come from pgd (Q2; a stand-in here)", _advloss_default),
    ],
    "q7": [
        Check("NFKC, zero-width removal, case kept", _norm_cases),
        Check("every homoglyph mapped back", _norm_homoglyphs),
    ],
    "q8": [
        Check("returns restore(x): a float32 batch of the input's shape, pixels in [0, 1]", _restore_shape),
        Check("restore rounds to one of the candidate grids", _restore_is_quantiser),
        Check("calls the attack once, on the validation set", _restore_attack_once),
        Check("picks the levels by the rule (no attack; a tie; a fixed PGD; none kept)", _restore_rule),
    ],
    "q9": [
        Check("returns a float32 tensor of the input's shape", _bpda_type),
        Check("stays inside the ε-ball and in [0, 1]", _bpda_ball_range),
        Check("attacks through restore on every step", _bpda_uses_restore),
        Check("breaks the quantised reader (5 and 3 levels, ε = 0.2)", _bpda_breaks_quantiser),
    ],
}


#: An authored hint for every hidden record of the lab (by key): the property it tests, never a value.
#: Hidden tests use another split of the digits (another target), fresh spam and other seeds.
HIDDEN_HINTS: dict[str, str] = {
    "q1_targeted_test.returns_tensor_type": "fgsm_targeted returns a torch tensor",
    "q1_targeted_test.shape": "the adversarial batch keeps the input's shape",
    "q1_targeted_test.dtype": "the adversarial batch keeps the input's floating-point dtype",
    "q1_targeted_test.stays_in_eps_ball": "no pixel moves by more than ε",
    "q1_targeted_test.clipped_to_valid_pixels": "pixels stay in [0, 1]",
    "q1_targeted_test.target_loss_goes_down": "the step descends the loss of the target class on another model",
    "q1_targeted_test.target_class_rate_at_eps_0_2": "a large ε makes another target read the chosen class on many "
                                                     "digits (measured by the grader)",
    "q1_targeted_test.target_class_rate_at_eps_0_1": "the share of digits read as the chosen class at a small ε matches "
                                                     "a correct targeted FGSM's",
    "q1_targeted_test.mean_abs_perturbation": "the size of the perturbation matches a full sign step, clipped",
    "q2_pgd_test.returns_tensor_type": "pgd returns a torch tensor",
    "q2_pgd_test.shape": "the adversarial batch keeps the input's shape",
    "q2_pgd_test.stays_in_eps_ball": "every step is projected back into the ε-ball",
    "q2_pgd_test.clipped_to_valid_pixels": "pixels stay in [0, 1]",
    "q2_pgd_test.accuracy_at_eps_0_1": "PGD fools another target at a moderate ε (measured by the grader)",
    "q2_pgd_test.pgd_minus_fgsm_accuracy_same_eps": "PGD is at least as strong as FGSM at the same ε",
    "q2_pgd_test.accuracy_at_eps_0_2": "PGD fools another target on almost every digit at a large ε",
    "q2_pgd_test.random_start_moves_x": "with no steps, the random start moves the input",
    "q2_pgd_test.random_start_seeded": "the same seed gives the same random start",
    "q3_metrics_test.returns_dict_type": "attack_metrics returns a dict",
    "q3_metrics_test.value_types": "the four metrics are Python floats",
    "q3_metrics_test.values": "the four metrics of an attack on another target",
    "q3_metrics_test.values_with_mislabelled_inputs": "the success rate counts only inputs the model classified "
                                                      "correctly before the attack",
    "q4_surrogate_test.is_a_module": "train_surrogate returns a new torch module, not the target",
    "q4_surrogate_test.queries_at_most_pool_size": "each image of the pool is queried at most once",
    "q4_surrogate_test.one_call_to_query_labels": "the pool is labelled with a single call to query_labels",
    "q4_surrogate_test.same_seed_same_surrogate": "the same seed gives the same surrogate",
    "q4_surrogate_test.other_seed_other_surrogate": "another seed gives another surrogate",
    "q4_surrogate_test.agreement_with_target": "the surrogate agrees with another target on unseen digits",
    "q4_surrogate_test.target_accuracy_under_transfer_eps_0_2": "attacks crafted on the surrogate transfer to the target",
    "q5_text_evasion_test.returns_str": "evade_text returns a str for every message",
    "q5_text_evasion_test.same_length": "the disguised text keeps the original's length",
    "q5_text_evasion_test.within_budget": "no more substitutions than the budget",
    "q5_text_evasion_test.only_homoglyph_substitutions": "every substitution is a homoglyph of the original letter",
    "q5_text_evasion_test.evasion_rate": "enough fresh spam gets past the filter (measured by the grader)",
    "q6_adv_training_test.fresh_seed_every_batch": "every batch gives the attack a fresh seed",
    "q6_adv_training_test.same_seed_same_attack_seeds": "two losses made with the same seed give the attack the same seeds",
    "q6_adv_training_test.robust_accuracy_pgd_eps_0_15": "a model trained with your loss (and the grader's PGD) resists "
                                                         "PGD (measured by the grader)",
    "q6_adv_training_test.robust_gain_over_undefended": "adversarial training makes the model much more robust than an "
                                                        "undefended one",
    "q6_adv_training_test.clean_accuracy": "the adversarially trained model keeps its clean accuracy",
    "q7_normalise_test.normalised_texts": "disguised fresh spam (homoglyphs, fullwidth letters, zero-width characters) "
                                          "normalised exactly",
    "q7_normalise_test.recovers_original": "normalising recovers the original messages",
    "q7_normalise_test.spam_caught_after_normalise": "the filter catches the normalised spam again",
    "q8_restore_test.one_attack_call": "the attack is called once, on the validation digits",
    "q8_restore_test.levels_follow_the_rule": "against a stronger attack on another target, the levels follow the rule",
    "q8_restore_test.restores_hidden_pgd": "the restored reader reads most digits of an unseen PGD attack (measured by "
                                           "the grader)",
    "q8_restore_test.restores_hidden_fgsm": "the restored reader reads most digits of an unseen FGSM attack (measured "
                                            "by the grader)",
    "q8_restore_test.benign_digits_keep_accuracy": "restoring clean digits keeps the reader's accuracy (measured by the "
                                                   "grader)",
    "q9_bpda_test.returns_tensor_type": "bpda_pgd returns a torch tensor",
    "q9_bpda_test.shape": "the adversarial batch keeps the input's shape",
    "q9_bpda_test.stays_in_eps_ball": "every step is projected back into the ε-ball",
    "q9_bpda_test.clipped_to_valid_pixels": "pixels stay in [0, 1]",
    "q9_bpda_test.restore_on_every_step": "every step goes through the defence",
    "q9_bpda_test.identity_restore_is_pgd": "with a defence that changes nothing, the attack is the PGD of Q2",
    "q9_bpda_test.breaks_five_level_quantiser": "the grader's quantised reader of another target is fooled at the "
                                                "given ε (measured by the grader)",
    "q9_bpda_test.breaks_three_level_quantiser": "a coarser quantiser is fooled too (measured by the grader)",
}
