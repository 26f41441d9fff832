"""Targets and tools for the adversarial-examples lesson and lab (lesson 03, lab03).

What lives here is *scaffolding*, never a graded answer:

* a seeded synthetic spam/abuse corpus (:func:`spam_corpus`), a WordPiece tokenizer trained
  locally on it with ``tokenizers`` (:func:`train_tokenizer`), and a tiny 2-layer BERT-shaped
  classifier in plain torch, cached by its recipe (:func:`spam_filter`; no ``transformers``,
  whose import would cost a few seconds of every run);
* a table of Latin letters and the Cyrillic/Greek letters that look like them
  (:data:`HOMOGLYPHS`), the raw material of homoglyph attacks and of their defence;
* small measurement helpers (:func:`linf_distance`, :func:`substitutions`) and the
  interactive ε explorer (:func:`epsilon_explorer`) that takes *any* attack as a callable.

The attacks (FGSM, PGD, transfer, text evasion) and the defences (adversarial training,
Unicode normalisation) are written by students in the lab.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: importing this module stays light
    import torch

# ------------------------------------------------------------------------------ homoglyphs

#: Latin lowercase letters and look-alike letters from other scripts (Cyrillic, Greek).
#: Every look-alike is stable under NFKC, so NFKC alone does not undo it.
HOMOGLYPHS: dict[str, tuple[str, ...]] = {
    "a": ("\u0430", "\u03b1"),  # Cyrillic a, Greek alpha
    "c": ("\u0441",),  # Cyrillic es
    "e": ("\u0435",),  # Cyrillic ie
    "h": ("\u04bb",),  # Cyrillic shha
    "i": ("\u0456", "\u03b9"),  # Ukrainian i, Greek iota
    "j": ("\u0458",),  # Cyrillic je
    "k": ("\u03ba",),  # Greek kappa
    "o": ("\u043e", "\u03bf"),  # Cyrillic o, Greek omicron
    "p": ("\u0440", "\u03c1"),  # Cyrillic er, Greek rho
    "s": ("\u0455",),  # Cyrillic dze
    "v": ("\u03bd",),  # Greek nu
    "x": ("\u0445", "\u03c7"),  # Cyrillic ha, Greek chi
    "y": ("\u0443",),  # Cyrillic u
}


def substitutions(original: str, modified: str) -> int:
    """Number of positions where two equally long strings differ (Hamming distance).

    Raises ``ValueError`` if the lengths differ: a substitution attack keeps the length.
    """
    if len(original) != len(modified):
        raise ValueError(f"lengths differ ({len(original)} vs {len(modified)}): not a pure substitution")
    return sum(a != b for a, b in zip(original, modified))


def linf_distance(x: torch.Tensor | np.ndarray, x_adv: torch.Tensor | np.ndarray) -> float:
    """The largest absolute change of any pixel, ``max |x_adv - x|`` (0.0 for empty inputs)."""
    import torch

    a = torch.as_tensor(x, dtype=torch.float32)
    b = torch.as_tensor(x_adv, dtype=torch.float32)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((b - a).abs().max()) if a.numel() else 0.0


# ------------------------------------------------------------------------------ the corpus

# A message is "{greet} {offer} {status} {action}"-shaped; each of the three content slots is
# filled from the spam pool or from the legitimate pool. The label is a rule of the content:
# spam iff at least two slots hold spam phrases, so one neutralised phrase can flip it.
_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "offer": {
        "spam": (
            "your free prize", "a cash reward", "cheap meds", "a bitcoin bonus", "a guaranteed payout",
            "an iphone giveaway", "a lottery jackpot", "discount pills", "your crypto winnings",
        ),
        "ham": (
            "the budget report", "the meeting agenda", "the project slides", "the team lunch",
            "the draft contract", "the quarterly review", "the holiday rota", "the expense claim",
        ),
    },
    "status": {
        "spam": (
            "is waiting for you", "expires tonight", "was approved instantly", "is guaranteed risk free",
            "needs urgent confirmation", "is unclaimed",
        ),
        "ham": (
            "is ready for review", "moved to friday", "was approved by finance", "is on the shared drive",
            "needs a second look", "is attached",
        ),
    },
    "action": {
        "spam": (
            "click the link now", "claim it immediately", "verify your password here", "act now to win",
            "send your bank details", "reply with your card number",
        ),
        "ham": (
            "see you at noon", "let me know what you think", "call me when you can", "thanks for your help",
            "reply when you have a minute", "the link is in the calendar invite",
        ),
    },
}
_GREETINGS = ("hi", "hello", "dear customer", "hey team", "good morning", "dear colleague", "")
_SHAPES = ("{greet} {offer} {status} {action}", "{greet} {offer} {status}, {action}", "{offer} {status} {action}")


@dataclass(frozen=True)
class TextCorpus:
    """Messages and their labels: 1 = spam/abuse (to be blocked), 0 = legitimate."""

    texts: tuple[str, ...]
    labels: np.ndarray  # int64, shape (n,)

    def __len__(self) -> int:
        return len(self.texts)

    def spam(self) -> list[str]:
        """The spam messages, in corpus order."""
        return [t for t, y in zip(self.texts, self.labels) if y == 1]


def spam_corpus(n: int = 1200, seed: int = 0) -> TextCorpus:
    """A balanced, seeded corpus of short spam and legitimate messages (lowercase ASCII).

    Each message has three content slots (offer, status, action). A spam message fills two
    or three of them with spam phrases, a legitimate one at most one, so legitimate mail
    shares spam vocabulary and a filter must count evidence rather than spot one word.
    """
    if n < 10:
        raise ValueError("spam_corpus() needs n >= 10")
    rng = np.random.default_rng(seed)
    slots = tuple(_PHRASES)
    texts: list[str] = []
    labels: list[int] = []
    for i in range(n):
        label = i % 2
        n_spam = int(rng.integers(2, 4)) if label == 1 else int(rng.integers(0, 2))
        spam_slots = set(rng.choice(len(slots), size=n_spam, replace=False).tolist())
        fill = {}
        for j, slot in enumerate(slots):
            pool = _PHRASES[slot]["spam" if j in spam_slots else "ham"]
            fill[slot] = pool[int(rng.integers(len(pool)))]
        fill["greet"] = _GREETINGS[int(rng.integers(len(_GREETINGS)))]
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        texts.append(" ".join(shape.format(**fill).split()))
        labels.append(label)
    order = rng.permutation(n)
    return TextCorpus(tuple(texts[i] for i in order), np.asarray(labels, dtype=np.int64)[order])


# ------------------------------------------------------------------------- tokenizer, model


class WordPieceTokenizer:
    """A trained ``tokenizers.Tokenizer`` with the few methods the lab calls: ``tokenize`` (the word pieces
    the model sees), ``tokenizer(text)["input_ids"]`` and a padded batch encoding. It wraps the Rust
    tokenizer directly, without ``transformers``, whose import alone costs seconds."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.pad_token_id = backend.token_to_id("[PAD]")
        self.unk_token_id = backend.token_to_id("[UNK]")
        self.cls_token_id = backend.token_to_id("[CLS]")
        self.sep_token_id = backend.token_to_id("[SEP]")

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab()

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``, without [CLS] and [SEP]."""
        return self.backend.encode(text, add_special_tokens=False).tokens

    def __call__(self, text: str) -> dict[str, list[int]]:
        """``input_ids`` ([CLS] ... [SEP]) and ``attention_mask`` of one text."""
        encoding = self.backend.encode(text)
        return {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask}

    def encode_batch(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of a batch, int64 tensors padded to its longest text."""
        import torch

        self.backend.enable_truncation(max_length)
        self.backend.enable_padding(pad_id=self.pad_token_id, pad_token="[PAD]")
        encodings = self.backend.encode_batch(list(texts))
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2000, min_frequency: int = 1) -> WordPieceTokenizer:
    """A WordPiece tokenizer whose vocabulary is learned from ``texts`` with ``tokenizers``.

    Its pipeline is deliberately naive, like many deployed filters: lowercase, split on
    whitespace and punctuation, no Unicode normalisation. A word holding a character the
    vocabulary has never seen becomes ``[UNK]``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # Learn the word vocabulary with a tokenizers trainer (words seen at least min_frequency
    # times), then add every character seen as a WordPiece fallback ("c" and "##c") so that
    # an unseen ASCII word is spelled out instead of vanishing. The ids are assigned in a
    # canonical order (specials, then sorted): the trainer's own numbering follows hash-map
    # order and would change from run to run, and with it the cached model's meaning.
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    words = set(tok.get_vocab()) - set(specials)
    chars = {ch for text in texts for ch in text.lower() if not ch.isspace()}
    pieces = words | chars | {"##" + ch for ch in chars}
    vocab = {t: i for i, t in enumerate(specials + sorted(pieces))}
    tok.model = models.WordPiece(vocab=vocab, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return WordPieceTokenizer(tok)


def _tiny_bert(vocab_size: int, n_layers: int, hidden: int, seed: int) -> torch.nn.Module:
    """BERT's shape at toy size, in plain torch: token and position embeddings, post-norm encoder layers
    (2 heads, GELU), a tanh pooler on [CLS] and a linear head over {legitimate, spam}. Initialised as BERT
    is (normal weights of std 0.02, zero biases)."""
    import torch
    from torch import nn

    class TinyBert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab_size, hidden)
            self.positions = nn.Embedding(64, hidden)
            self.norm = nn.LayerNorm(hidden, eps=1e-12)
            self.dropout = nn.Dropout(0.1)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(hidden, 2, 2 * hidden, 0.1, activation="gelu", batch_first=True,
                                           layer_norm_eps=1e-12)
                for _ in range(n_layers)
            )
            self.pooler = nn.Linear(hidden, hidden)
            self.classifier = nn.Linear(hidden, 2)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(input_ids.shape[1])
            h = self.dropout(self.norm(self.tokens(input_ids) + self.positions(positions)))
            padding = attention_mask == 0
            for layer in self.layers:
                h = layer(h, src_key_padding_mask=padding)
            return self.classifier(self.dropout(torch.tanh(self.pooler(h[:, 0]))))  # logits from [CLS]

    torch.manual_seed(seed)
    model = TinyBert()
    for name, p in model.named_parameters():
        if "norm" in name:
            continue  # LayerNorms keep weight 1, bias 0
        if p.dim() > 1:
            nn.init.normal_(p, std=0.02)
        else:
            nn.init.zeros_(p)
    return model


@dataclass
class SpamFilter:
    """A trained text classifier and its tokenizer. ``spam_probability(texts)`` is the
    deployed filter's score; a message is blocked when it is at least ``threshold``."""

    tokenizer: WordPieceTokenizer
    model: torch.nn.Module
    max_length: int = 32
    threshold: float = 0.5

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer.encode_batch(texts, self.max_length)

    def spam_probability(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of the spam class for each text, shape (len(texts),), float64."""
        import torch

        if len(texts) == 0:
            return np.zeros(0)
        if self.model.training:  # a caller may have switched it; dropout must be off when scoring
            self.model.eval()
        with torch.no_grad():
            logits = self.model(**self.encode(texts))
            return torch.softmax(logits, dim=1)[:, 1].double().numpy()

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """1 (blocked) or 0 (delivered) for each text."""
        return (self.spam_probability(texts) >= self.threshold).astype(np.int64)

    def accuracy(self, corpus: TextCorpus) -> float:
        return float(np.mean(self.predict(corpus.texts) == corpus.labels))


def spam_filter(
    seed: int = 0,
    *,
    n_train: int = 1200,
    n_layers: int = 2,
    hidden: int = 32,
    epochs: int = 6,
    lr: float = 3e-3,
    batch_size: int = 32,
    unk_rate: float = 0.2,
) -> SpamFilter:
    """The content filter under attack: a 2-layer BERT-shaped classifier (plain torch, see
    :func:`_tiny_bert`) on ``spam_corpus(n_train, seed)``, with a tokenizer trained on the same
    corpus. Trained in a few seconds, then cached by its recipe."""
    import torch
    import torch.nn.functional as F

    from aisec.cache import cached_state_dict

    corpus = spam_corpus(n_train, seed)
    tokenizer = train_tokenizer(corpus.texts)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    recipe = {
        "corpus": hashlib.sha256("\n".join(corpus.texts).encode()).hexdigest()[:16],
        "vocab": hashlib.sha256(repr(vocab).encode()).hexdigest()[:16],
        "n_layers": n_layers,
        "hidden": hidden,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "unk_rate": unk_rate,
        "seed": seed,
    }
    unk_id = tokenizer.unk_token_id
    shell = SpamFilter(tokenizer, _tiny_bert(len(vocab), n_layers, hidden, seed))

    def train() -> dict[str, torch.Tensor]:
        model = shell.model
        batch = shell.encode(corpus.texts)
        labels = torch.as_tensor(corpus.labels)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(labels), batch_size):
                idx = order[start : start + batch_size]
                inputs = {k: v[idx] for k, v in batch.items()}
                # Token dropout: replace a few word pieces by [UNK] (ids 0-3 are the specials),
                # as unknown words do occur in real mail; the filter learns [UNK] is no evidence.
                ids = inputs["input_ids"].clone()
                drop = (torch.rand(ids.shape, generator=generator) < unk_rate) & (ids > 3)
                ids[drop] = unk_id
                inputs["input_ids"] = ids
                loss = F.cross_entropy(model(**inputs), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        return model.state_dict()

    state = cached_state_dict("spam-tinybert", recipe, train)
    shell.model.load_state_dict(state)
    shell.model.eval()
    return shell


# ------------------------------------------------------------------------------ explorer

Attack = Callable[["torch.nn.Module", "torch.Tensor", "torch.Tensor", float], "torch.Tensor"]


def explore_step(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, eps: float
) -> dict[str, Any]:
    """Attack one image at ``eps`` and describe the outcome: the adversarial image, the
    perturbation, and the model's prediction and confidence before and after."""
    import torch

    x1 = torch.as_tensor(x, dtype=torch.float32).reshape(1, -1)
    y1 = torch.as_tensor(y, dtype=torch.long).reshape(1)
    x_adv = attack(model, x1, y1, float(eps)).detach().reshape(1, -1)
    with torch.no_grad():
        p_clean = torch.softmax(model(x1), dim=1)[0]
        p_adv = torch.softmax(model(x_adv), dim=1)[0]
    return {
        "x_adv": x_adv[0],
        "delta": (x_adv - x1)[0],
        "clean_pred": int(p_clean.argmax()),
        "clean_conf": float(p_clean.max()),
        "adv_pred": int(p_adv.argmax()),
        "adv_conf": float(p_adv.max()),
        "true": int(y1[0]),
    }


def epsilon_explorer(
    model: torch.nn.Module,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    attack: Attack,
    *,
    eps_max: float = 0.5,
    eps_step: float = 0.01,
    eps: float = 0.1,
    title: str = "attack",
) -> Any:
    """An ipywidgets explorer: an ε slider and an image picker; for each setting it shows the
    image, the perturbation and the adversarial image, with the model's prediction and
    confidence, updated live. ``attack(model, x, y, eps)`` is any attack (yours, in the lab).

    Returns the widget (display it). Safe headless: building it draws once into an Output.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    xs = torch.as_tensor(x, dtype=torch.float32)
    ys = torch.as_tensor(y, dtype=torch.long)
    eps_slider = widgets.FloatSlider(value=eps, min=0.0, max=eps_max, step=eps_step, description="ε", readout_format=".2f")
    index = widgets.IntSlider(value=0, min=0, max=len(xs) - 1, description="image")
    out = widgets.Output()
    status = widgets.HTML()

    def redraw(_change: Any = None) -> None:
        i = int(index.value)
        try:
            step = explore_step(model, xs[i], ys[i], attack, float(eps_slider.value))
        except NotImplementedError:
            status.value = "<b>The attack is not implemented yet.</b>"
            return
        verdict = "fooled" if step["adv_pred"] != step["true"] else "not fooled"
        status.value = (
            f"true label <b>{step['true']}</b> · clean prediction {step['clean_pred']} "
            f"({step['clean_conf']:.1%}) · adversarial prediction <b>{step['adv_pred']}</b> "
            f"({step['adv_conf']:.1%}) · model {verdict}"
        )
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
            limit = max(float(eps_slider.value), 1e-6)
            panels = (
                (xs[i], f"clean: {step['clean_pred']} ({step['clean_conf']:.0%})", "gray_r", 0.0, 1.0),
                (step["delta"], f"perturbation (±{eps_slider.value:.2f})", "seismic", -limit, limit),
                (step["x_adv"], f"adversarial: {step['adv_pred']} ({step['adv_conf']:.0%})", "gray_r", 0.0, 1.0),
            )
            for ax, (img, caption, cmap, lo, hi) in zip(axes, panels):
                ax.imshow(np.asarray(img).reshape(8, 8), cmap=cmap, vmin=lo, vmax=hi)
                ax.set_title(caption, fontsize=9)
                ax.axis("off")
            fig.suptitle(f"{title} at ε = {eps_slider.value:.2f}")
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    eps_slider.observe(redraw, names="value")
    index.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([eps_slider, index]), status, out])
    box.redraw = redraw  # type: ignore[attr-defined]  # lets tests drive it headless
    return box
