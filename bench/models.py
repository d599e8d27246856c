"""Causal LMs for the benchmarks, built locally from config with random weights.

Same recipe as the test suite's tiny models (hfchat/testing/tiny_models.py: the
offline BPE tokenizer, the ChatML template, suppressed special and blank tokens so every
reply is exactly max_new_tokens of visible text), but big enough that generating takes
seconds: the work the app wraps must dominate, as it does with real models.

CLI: ``python -m bench.models SIZE OUT_DIR`` builds one and prints its folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hfchat.testing.tiny_models import CHATML_TEMPLATE, build_tokenizer, cached_build, generation_config

# Llama-style shapes. Linear layers have widths divisible by 64, bitsandbytes' block size.
SIZES: dict[str, dict[str, Any]] = {
    # The smoke test's size: builds and runs in a blink, measures nothing.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
    # ~51M parameters: a 32-token reply takes seconds on a shared 2-core CPU.
    "bench": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
    # ~1.1B parameters (TinyLlama's shapes), for the GPU rows.
    "1b": dict(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4
    ),
}


def build_model(size: str, root: Path, *, seed: int = 0) -> Path:
    """Build (or reuse) the `size` model under `root`; returns its folder."""
    shape = SIZES[size]

    def write(tmp: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = build_tokenizer(CHATML_TEMPLATE)
        ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
        config = LlamaConfig(
            vocab_size=len(tok),
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            # Wide enough weights that greedy output varies (the default 0.02 repeats one
            # token), scaled down with width so activations stay finite.
            initializer_range=0.3 * (64 / shape["hidden_size"]) ** 0.5,
            **{"num_key_value_heads": shape["num_attention_heads"], **shape},
            **ids,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
        model.generation_config = generation_config(tok)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return cached_build(Path(root) / f"{size}-{seed}", write)


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in SIZES:
        print(f"usage: python -m bench.models {{{','.join(SIZES)}}} OUT_DIR", file=sys.stderr)
        return 2
    print(build_model(args[0], Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
