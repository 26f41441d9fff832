"""Labs 1 and 3 build their small models in plain PyTorch, because importing transformers costs about 4 s of
CPU, a fifth of a lab's 20 s warm budget. These tests hold them to the architectures they claim to be: the same
weights, loaded into transformers' own GPT-2 and BERT, give the same outputs.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")


def _gpt2_from(model, vocab_size: int, n_layer: int, n_embd: int, n_head: int, n_positions: int):
    """transformers' GPT2LMHeadModel holding ``model``'s weights (GPT-2's Conv1D stores Linear weights transposed)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        activation_function="relu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    hf = GPT2LMHeadModel(config).eval()
    state = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight,
             "transformer.ln_f.weight": model.ln_f.weight, "transformer.ln_f.bias": model.ln_f.bias}
    for i, block in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        state |= {
            p + "ln_1.weight": block.ln_1.weight, p + "ln_1.bias": block.ln_1.bias,
            p + "ln_2.weight": block.ln_2.weight, p + "ln_2.bias": block.ln_2.bias,
            p + "attn.c_attn.weight": block.qkv.weight.T, p + "attn.c_attn.bias": block.qkv.bias,
            p + "attn.c_proj.weight": block.proj.weight.T, p + "attn.c_proj.bias": block.proj.bias,
            p + "mlp.c_fc.weight": block.mlp[0].weight.T, p + "mlp.c_fc.bias": block.mlp[0].bias,
            p + "mlp.c_proj.weight": block.mlp[2].weight.T, p + "mlp.c_proj.bias": block.mlp[2].bias,
        }
    missing, unexpected = hf.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing  # tied to wte
    hf.tie_weights()
    return hf


def test_lab01_canary_model_is_gpt2():
    from aisec.lab01.leakage import build_lm

    vocab, n_layer, n_embd, n_head, n_positions = 37, 2, 64, 4, 160
    model = build_lm(vocab, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions, seed=3)
    # random, not GPT-2's 0.02 initialisation: differences in any layer show in the logits
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    hf = _gpt2_from(model, vocab, n_layer, n_embd, n_head, n_positions)
    ids = torch.randint(0, vocab, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert theirs.abs().max() > 1.0  # a real signal, not two near-zero tensors
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)

    # The shared-prefix path (keys and values of one prefix, broadcast to a batch) is GPT-2 with past_key_values.
    prefix, rest = ids[:1, :25], ids[:, 25:]
    with torch.no_grad():
        _, past = model(prefix, return_past=True)
        continued = model(rest, past=past)
        full = hf(torch.cat([prefix.expand(3, -1), rest], dim=1)).logits[:, 25:]
    torch.testing.assert_close(continued, full, rtol=1e-4, atol=1e-4)

    # and a different architecture (GELU instead of ReLU) is told apart
    hf.config.activation_function = "gelu_new"
    for block in hf.transformer.h:
        block.mlp.act = transformers.activations.ACT2FN["gelu_new"]
    with torch.no_grad():
        assert not torch.allclose(model(ids), hf(ids).logits, atol=1e-3)


def test_lab03_spam_filter_is_bert():
    from transformers import BertConfig, BertForSequenceClassification

    from aisec.lab03.adversarial import _tiny_bert

    vocab, n_layers, hidden = 50, 2, 32
    model = _tiny_bert(vocab, n_layers, hidden, seed=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, hidden_act="gelu", max_position_embeddings=64, type_vocab_size=1,
                        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2)
    hf = BertForSequenceClassification(config).eval()
    state = {
        "bert.embeddings.word_embeddings.weight": model.tokens.weight,
        "bert.embeddings.position_embeddings.weight": model.positions.weight,
        "bert.embeddings.token_type_embeddings.weight": torch.zeros(1, hidden),  # one segment, adding nothing
        "bert.embeddings.LayerNorm.weight": model.norm.weight, "bert.embeddings.LayerNorm.bias": model.norm.bias,
        "bert.pooler.dense.weight": model.pooler.weight, "bert.pooler.dense.bias": model.pooler.bias,
        "classifier.weight": model.classifier.weight, "classifier.bias": model.classifier.bias,
    }
    for i, layer in enumerate(model.layers):
        p = f"bert.encoder.layer.{i}."
        (wq, wk, wv), (bq, bk, bv) = layer.self_attn.in_proj_weight.chunk(3), layer.self_attn.in_proj_bias.chunk(3)
        state |= {
            p + "attention.self.query.weight": wq, p + "attention.self.query.bias": bq,
            p + "attention.self.key.weight": wk, p + "attention.self.key.bias": bk,
            p + "attention.self.value.weight": wv, p + "attention.self.value.bias": bv,
            p + "attention.output.dense.weight": layer.self_attn.out_proj.weight,
            p + "attention.output.dense.bias": layer.self_attn.out_proj.bias,
            p + "attention.output.LayerNorm.weight": layer.norm1.weight, p + "attention.output.LayerNorm.bias": layer.norm1.bias,
            p + "intermediate.dense.weight": layer.linear1.weight, p + "intermediate.dense.bias": layer.linear1.bias,
            p + "output.dense.weight": layer.linear2.weight, p + "output.dense.bias": layer.linear2.bias,
            p + "output.LayerNorm.weight": layer.norm2.weight, p + "output.LayerNorm.bias": layer.norm2.bias,
        }
    missing, unexpected = hf.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)

    ids = torch.randint(0, vocab, (4, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0  # padded rows, as the filter's batches have them
    mask[3, 5:] = 0
    with torch.no_grad():
        ours = model(ids, mask)
        theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
    assert (theirs[:, 0] - theirs[:, 1]).abs().max() > 0.1  # the rows are told apart: a real signal
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
