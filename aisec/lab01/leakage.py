"""A tiny character-level GPT-2-style model trained on a seeded support-ticket corpus with planted canaries.

The corpus imitates a help desk's ticket log. A few *canaries* (a sentence holding a random
secret, e.g. "the door code of the Porto office is 482913") are inserted a chosen number of
times each, as in Carlini et al. 2019 (*The Secret Sharer*). The model is a GPT-2-style decoder
written in plain PyTorch (two layers, 64 dimensions, learned positions, tied embeddings) over a
character vocabulary taken from the corpus; it trains in seconds on a CPU and is cached by its
recipe. (Plain PyTorch, not ``transformers``: the same architecture without an import that costs
seconds each time the lab starts.)

This module builds data and models and scores text. The attacks (exposure, extraction) and
the defences are written by students in the lab, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.cache import cached_state_dict

if TYPE_CHECKING:  # torch loads inside the functions that use it: importing this module stays cheap
    import torch

BOS = "\n"  # every line starts after a newline, as in a log file
PAD = "\x00"

_PLACES = (
    "Porto", "Leeds", "Turku", "Ghent", "Cork", "Lyon", "Graz", "Bergen", "Malmo", "Split",
    "Tartu", "Bilbao", "Aarhus", "Bruges", "Parma", "Kaunas",
)
_NAMES = (
    "Maria", "Kenneth", "Aisha", "Tom", "Lucia", "Omar", "Sven", "Mei", "Priya", "Jonas", "Ana",
    "Farid", "Greta", "Hugo", "Ines", "Kofi", "Lena", "Marek", "Nora", "Pablo", "Rosa", "Yuki",
)
_PRODUCTS = (
    "kettle", "router", "desk lamp", "headset", "blender", "printer", "monitor", "backpack",
    "webcam", "keyboard", "toaster", "speaker",
)
_ISSUES = (
    "arrived broken", "never arrived", "stopped working after a week", "was charged twice",
    "is missing a cable", "makes a loud noise", "does not turn on", "came in the wrong colour",
)
_ASKS = (
    "please send a replacement", "I would like a refund", "can someone call me back",
    "please cancel the order", "what are my options", "please fix this today",
)
_REPLIES = (
    "Agent: refund approved, allow 5 days.", "Agent: replacement shipped today.",
    "Agent: escalated to the warehouse team.", "Agent: asked the customer for a photo.",
    "Agent: closed as duplicate.", "Agent: called back, issue solved.",
)


@dataclass(frozen=True)
class Canary:
    """A planted secret: ``prefix + secret`` was inserted ``insertions`` times into the corpus."""

    prefix: str
    secret: str
    insertions: int

    @property
    def text(self) -> str:
        return self.prefix + self.secret


@dataclass(frozen=True)
class Corpus:
    """Training lines (each one ticket or one canary sentence) and the canaries planted in them."""

    lines: tuple[str, ...]
    canaries: tuple[Canary, ...]
    seed: int
    secret_alphabet: str = "0123456789"
    meta: Mapping[str, int] = field(default_factory=dict)


_CANARY_TEMPLATES = (
    "The door code of the {place} office is ",
    "Alarm PIN for the {place} warehouse: ",
    "Safe combination in {place} server room = ",
    "Locker code at {place} reception is ",
    "Backup PIN of the {place} branch ",
)


def canary_prefix(place: str, template: int = 0) -> str:
    """The text that precedes a canary's secret (one of a few internal-memo templates)."""
    return _CANARY_TEMPLATES[template % len(_CANARY_TEMPLATES)].format(place=place)


def ticket_corpus(
    seed: int = 0,
    n_tickets: int = 240,
    insertions: Sequence[int] = (1, 2, 4, 8, 16),
    secret_length: int = 6,
) -> Corpus:
    """A seeded help-desk log of ``n_tickets`` tickets with one canary per entry of ``insertions``.

    Each canary has its own place and memo template and a random ``secret_length``-digit code, and
    its sentence is inserted as many times as the matching entry of ``insertions`` at random
    positions. Ticket numbers, dates and amounts put plenty of digits in the corpus, so the
    model has a realistic prior over digit strings.
    """
    if len(insertions) > len(_PLACES):
        raise ValueError(f"at most {len(_PLACES)} canaries")
    rng = np.random.default_rng(seed)
    names = np.array(_NAMES)
    lines: list[str] = []
    for _ in range(n_tickets):
        number = int(rng.integers(10000, 99999))
        name = str(rng.choice(names))
        product = str(rng.choice(_PRODUCTS))
        issue = str(rng.choice(_ISSUES))
        ask = str(rng.choice(_ASKS))
        reply = str(rng.choice(_REPLIES))
        amount = f"{int(rng.integers(9, 400))}.{int(rng.integers(0, 100)):02d}"
        if rng.random() < 0.5:
            lines.append(f"#{number} {name}: my {product} {issue}, {ask}.")
        else:
            lines.append(f"#{number} {reply} Paid {amount} EUR.")
    places = rng.choice(np.array(_PLACES), size=len(insertions), replace=False)
    canaries = []
    templates = rng.permutation(max(len(_CANARY_TEMPLATES), len(insertions)))
    for i, (place, count) in enumerate(zip(places, insertions)):
        secret = "".join(str(d) for d in rng.integers(0, 10, size=secret_length))
        canaries.append(Canary(canary_prefix(str(place), int(templates[i])), secret, int(count)))
    for canary in canaries:
        for _ in range(canary.insertions):
            lines.insert(int(rng.integers(0, len(lines) + 1)), canary.text)
    return Corpus(tuple(lines), tuple(canaries), seed, meta={"n_tickets": n_tickets})


# ------------------------------------------------------------------------------ tokenizer


class CharCodec:
    """A character-level tokenizer whose vocabulary is the set of characters of a corpus."""

    def __init__(self, alphabet: str):
        chars = [PAD, BOS] + sorted(set(alphabet) - {PAD, BOS})
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.pad_id = 0

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> CharCodec:
        return cls("".join(lines) + "0123456789")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:  # checked only on failure: scoring encodes thousands of candidates
            unknown = set(text) - self.stoi.keys()
            raise ValueError(f"characters not in the vocabulary: {sorted(unknown)}") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)


# ------------------------------------------------------------------------------ model


def build_lm(vocab_size: int, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 160, seed: int = 0):
    """A freshly initialised tiny GPT (:class:`TinyGPT`, a ``torch.nn.Module``), in eval mode.

    ``model(input_ids)`` returns next-character logits of shape ``(batch, length, vocab_size)``.
    """
    import torch

    torch.manual_seed(seed)
    model = _tiny_gpt_class()(vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions)
    model.eval()
    return model


@functools.lru_cache(maxsize=1)
def _tiny_gpt_class():
    """The model class, defined at the first call so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        """Pre-norm GPT-2 block: causal self-attention, then a ReLU MLP, each with a residual."""

        def __init__(self, n_embd: int, n_head: int) -> None:
            super().__init__()
            self.n_head = n_head
            self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.qkv, self.proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd))

        def forward(self, x, past=None, rows=None):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln_1(x)).split(d, dim=-1)
            q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
            if past is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return self._out(x, y), (k, v)
            # keys and values of a prefix read once (batch 1, broadcast), then each row's own earlier
            # positions (``rows``), then, causally, the new ones: the prefix is never copied per row
            k0, v0 = past[0][0], past[1][0]  # (heads, prefix length, head size)
            h, p, hd = k0.shape
            if rows is not None:
                k, v = torch.cat([rows[0], k], dim=2), torch.cat([rows[1], v], dim=2)
            causal = torch.ones(t, k.shape[2], dtype=torch.bool).tril(diagonal=k.shape[2] - t)
            on_prefix = (q.transpose(0, 1).reshape(h, b * t, hd) @ k0.transpose(-2, -1)).view(h, b, t, p).transpose(0, 1)
            on_rows = (q @ k.transpose(-2, -1)).masked_fill(~causal, float("-inf"))
            w = torch.softmax(torch.cat([on_prefix, on_rows], dim=-1) * hd**-0.5, dim=-1)
            from_prefix = (w[..., :p].transpose(0, 1).reshape(h, b * t, p) @ v0).view(h, b, t, hd).transpose(0, 1)
            return self._out(x, from_prefix + w[..., p:] @ v), (k, v)

        def _out(self, x, y):
            b, t, d = x.shape
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln_2(x))

    class TinyGPT(nn.Module):
        """A character-level GPT-2-style decoder: token and position embeddings, pre-norm blocks,
        a final layer norm and an output layer tied to the token embedding."""

        def __init__(self, vocab_size: int, *, n_layer: int, n_embd: int, n_head: int, n_positions: int) -> None:
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(n_positions, n_embd)
            self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            for module in self.modules():  # GPT-2's initialisation
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear):
                    nn.init.zeros_(module.bias)

        def forward(self, input_ids, past=None, return_past: bool = False, rows=None):
            """Logits ``(batch, length, vocab)``. ``return_past=True`` also returns each layer's keys and
            values. Without ``past`` they are the sequence's; passed back as ``past`` (batch size 1) they
            are a prefix shared by every row of ``input_ids``, and the keys and values then returned are
            the rows' own, which ``rows`` passes back to continue each row after the shared prefix."""
            start = 0 if past is None else past[0][0].shape[2] + (0 if rows is None else rows[0][0].shape[2])
            positions = torch.arange(start, start + input_ids.shape[1])
            x = self.wte(input_ids) + self.wpe(positions)
            present = []
            for i, block in enumerate(self.blocks):
                x, kv = block(x, None if past is None else past[i], None if rows is None else rows[i])
                present.append(kv)
            logits = self.ln_f(x) @ self.wte.weight.T
            return (logits, present) if return_past else logits

    return TinyGPT


def _batch(codec: CharCodec, lines: Sequence[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    ids = [[codec.stoi[BOS]] + codec.encode(line)[: max_len - 1] for line in lines]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), codec.pad_id, dtype=torch.long)
    labels = torch.full((len(ids), width), -100, dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(x)] = torch.tensor(x)
    return input_ids, labels


@dataclass
class TrainedLM:
    """A trained tiny LM with its tokenizer, and the state of the weights at each checkpoint."""

    model: object  # a TinyGPT (torch.nn.Module)
    codec: CharCodec
    checkpoints: dict[int, dict[str, torch.Tensor]]

    def at_step(self, step: int):
        """The model with the weights it had after ``step`` training steps (a new module)."""
        model = build_lm(self.codec.vocab_size)
        model.load_state_dict(self.checkpoints[step])
        model.eval()
        return model


def train_lm(
    corpus: Corpus | Sequence[str],
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 3e-3,
    checkpoints: Sequence[int] = (),
    seed: int = 0,
    name: str = "ticket-lm",
    progress: bool = True,
) -> TrainedLM:
    """Train (or load from the cache) a tiny GPT-2 on the corpus lines with AdamW.

    ``checkpoints`` lists step counts whose weights are kept too (the final step always is),
    so that the growth of memorisation with training can be measured from one run.
    """
    lines = list(corpus.lines if isinstance(corpus, Corpus) else corpus)
    codec = CharCodec.from_lines(lines)
    wanted = sorted(set(int(s) for s in checkpoints) | {steps})
    if wanted[0] <= 0 or wanted[-1] > steps:
        raise ValueError("checkpoints must lie in 1..steps")
    max_len = 160
    import hashlib

    fingerprint = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    # "arch" keeps weights cached by the earlier transformers GPT-2 from being loaded into this model
    recipe = {"arch": "tiny-gpt", "steps": steps, "batch_size": batch_size, "lr": lr, "checkpoints": wanted, "seed": seed,
              "data": fingerprint}

    def train() -> dict[str, torch.Tensor]:
        import torch
        from tqdm.auto import tqdm

        model = build_lm(codec.vocab_size, seed=seed)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50))
        generator = torch.Generator().manual_seed(seed)
        saved: dict[str, torch.Tensor] = {}
        order = torch.randperm(len(lines), generator=generator)
        cursor = 0
        for step in tqdm(range(1, steps + 1), desc=f"training {name}", disable=not progress, leave=False):
            if cursor + batch_size > len(order):
                order = torch.randperm(len(lines), generator=generator)
                cursor = 0
            idx = order[cursor : cursor + batch_size].tolist()
            cursor += batch_size
            input_ids, labels = _batch(codec, [lines[i] for i in idx], max_len)
            # right padding needs no attention mask in a causal model; padded targets are ignored
            logits = model(input_ids)
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if step in wanted:
                for k, v in model.state_dict().items():
                    saved[f"{step}/{k}"] = v.detach().clone()
        return saved

    flat = cached_state_dict(name, recipe, train)
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        step_text, _, param = key.partition("/")
        states.setdefault(int(step_text), {})[param] = tensor
    final = build_lm(codec.vocab_size, seed=seed)
    final.load_state_dict(states[steps])
    final.eval()
    return TrainedLM(final, codec, states)


# ------------------------------------------------------------------------------ scoring


def _prefix_cache(model, codec: CharCodec, prefix: str, batch: int):
    """Run ``BOS + prefix`` once; return the next-character log-probs and the keys and values of
    the prefix, shared by the ``batch`` continuations scored after it (no re-reading, no copies)."""
    import torch

    ids = torch.tensor([[codec.stoi[BOS]] + codec.encode(prefix)])
    logits, past = model(ids, return_past=True)
    return torch.log_softmax(logits[0, -1].double(), dim=-1), past  # the model broadcasts a batch-1 past


def _no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.no_grad()`` as a decorator that imports torch at the first call, not at import time."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


@_no_grad
def continuation_logprobs(model, codec: CharCodec, prefix: str, continuations: Sequence[str], chunk: int = 1024) -> np.ndarray:
    """log P(continuation | prefix) under the model, summed over the continuation's
    characters, for continuations that all have the same length.

    Returns a float64 array of shape ``(len(continuations),)``. The prefix is read once and
    candidates sharing their first characters share that work (keys and values cached), so
    scoring thousands of 6-digit candidates takes a fraction of a second.
    """
    if not continuations:
        return np.zeros(0)
    lengths = {len(c) for c in continuations}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("continuations must be non-empty and all of the same length")
    import torch

    model.eval()
    scores: list[np.ndarray] = []
    for start in range(0, len(continuations), chunk):
        part = list(continuations[start : start + chunk])
        ids = torch.tensor([codec.encode(c) for c in part])
        first, shared = _prefix_cache(model, codec, prefix, len(part))
        total = first[ids[:, 0]]
        # Walk the candidates' prefix tree one character at a time: 1000 random 6-digit codes share
        # their first digits, so each distinct start is run once (about half the work of every row).
        node, rows = torch.zeros(len(part), dtype=torch.long), None  # node: a row's start, numbered per level
        for level in range(1, ids.shape[1]):
            starts, node = torch.unique(node * codec.vocab_size + ids[:, level - 1], return_inverse=True)
            if rows is not None:  # each start continues its parent's keys and values
                rows = [(k[starts // codec.vocab_size], v[starts // codec.vocab_size]) for k, v in rows]
            logits, rows = model((starts % codec.vocab_size).unsqueeze(1), past=shared, rows=rows, return_past=True)
            total = total + torch.log_softmax(logits[:, -1].double(), dim=-1)[node, ids[:, level]]
        scores.append(total.numpy())
    return np.concatenate(scores)


@_no_grad
def next_char_logprobs(model, codec: CharCodec, prefix: str, continuations: Sequence[str] = ("",)) -> np.ndarray:
    """The model's log-probabilities of the next character after ``prefix + c`` for each
    continuation ``c`` (all of the same length; ``""`` means right after the prefix).

    Returns a float64 array of shape ``(len(continuations), codec.vocab_size)``; column ``j``
    is the character ``codec.itos[j]``.
    """
    lengths = {len(c) for c in continuations}
    if len(lengths) != 1:
        raise ValueError("continuations must all have the same length")
    import torch

    model.eval()
    first, cache = _prefix_cache(model, codec, prefix, len(continuations))
    if lengths == {0}:
        return first.unsqueeze(0).repeat(len(continuations), 1).numpy()
    ids = torch.tensor([codec.encode(c) for c in continuations])
    logits = model(ids, past=cache)[:, -1]
    return torch.log_softmax(logits.double(), dim=-1).numpy()


def random_secrets(n: int, length: int, seed: int, alphabet: str = "0123456789", exclude: Sequence[str] = ()) -> list[str]:
    """``n`` distinct random strings of ``length`` characters from ``alphabet``, none in ``exclude``.

    Used to sample the candidate space when it is too large to enumerate (10^6 six-digit codes).
    """
    space = len(alphabet) ** length
    if n > space - len(set(exclude)):
        raise ValueError("asked for more candidates than the space holds")
    rng = np.random.default_rng(seed)
    letters = np.array(list(alphabet))
    seen = set(exclude)
    out: list[str] = []
    while len(out) < n:
        draw = rng.choice(letters, size=(n, length))
        for row in draw:
            s = "".join(row)
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


# ------------------------------------------------------------------------------ membership inference


def clinic_records(seed: int = 0, n: int = 1600) -> tuple[np.ndarray, np.ndarray]:
    """A seeded tabular data set for membership inference: ``n`` patients, 24 standardised
    float32 features, a 4-class diagnosis label (int64) with a little label noise.

    Few rows per feature and noisy labels make an unregularised network memorise its
    training rows, as Shokri et al. (2017) saw on hospital and purchase records.
    """
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n, n_features=24, n_informative=10, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, flip_y=0.05, class_sep=1.0, random_state=seed,
    )
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x.astype(np.float32), y.astype(np.int64)


def overfit_classifier(x: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 300, hidden: int = 256, name: str = "clinic-mlp"):
    """The target model's recipe: an MLP trained full-batch with Adam, no regularisation,
    until it fits its training rows perfectly. Cached by recipe and data fingerprint.

    A shadow model (Shokri et al.) is the same recipe on other data from the same source.
    """
    from aisec.models import MLP, _fingerprint, train_classifier

    recipe = {"epochs": epochs, "hidden": hidden, "seed": seed, "data": _fingerprint(x, y)}

    def build() -> MLP:
        import torch

        torch.manual_seed(seed)
        return MLP(x.shape[1], (hidden,), 4)

    def fit(model) -> None:
        train_classifier(model, x, y, epochs=epochs, lr=1e-2, batch_size=len(x), seed=seed)

    from aisec.cache import cached_model

    return cached_model(name, recipe, build, fit)
