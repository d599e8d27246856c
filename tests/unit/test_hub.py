"""The model picker's plain functions (issue 16): fit arithmetic against known parameter counts,
GGUF quantization names, capability badges, filters and what one click sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfchat import hub
from hfchat.hub import Capabilities, Fit, Memory, ModelResult, Query, Source

GIB = 1024**3
OVERHEAD = 512 * 1024**2

LLAMA_8B = 8_030_261_248  # meta-llama/Llama-3.1-8B-Instruct's safetensors total
SMOLLM2_135M = 134_515_008  # HuggingFaceTB/SmolLM2-135M-Instruct
QWEN_72B = 72_706_203_648  # Qwen/Qwen2.5-72B-Instruct


@pytest.mark.parametrize(
    ("parameters", "bf16_bytes", "four_bit_bytes"),
    [
        # bf16: 2 bytes a weight; 4-bit: 4.5 bits (0.5625 bytes); each plus 20% and 512 MiB.
        (LLAMA_8B, int(LLAMA_8B * 2 * 1.2) + OVERHEAD, int(LLAMA_8B * 0.5625 * 1.2) + OVERHEAD),
        (SMOLLM2_135M, int(SMOLLM2_135M * 2 * 1.2) + OVERHEAD, int(SMOLLM2_135M * 0.5625 * 1.2) + OVERHEAD),
        (QWEN_72B, int(QWEN_72B * 2 * 1.2) + OVERHEAD, int(QWEN_72B * 0.5625 * 1.2) + OVERHEAD),
    ],
)
def test_estimates_are_weights_plus_margin(parameters: int, bf16_bytes: int, four_bit_bytes: int) -> None:
    fit = Fit.of(parameters, Memory(64 * GIB, "RAM"))
    assert abs(fit.bf16_bytes - bf16_bytes) <= 1
    assert abs(fit.four_bit_bytes - four_bit_bytes) <= 1


def test_an_8b_model_in_bf16_and_4bit_in_round_figures() -> None:
    fit = Fit.of(LLAMA_8B, Memory(16 * GIB, "VRAM"))
    assert round(fit.bf16_bytes / 1e9, 1) == 19.8  # 16.06 GB of weights + 20% + 0.54 GB
    assert round(fit.four_bit_bytes / 1e9, 1) == 6.0  # 4.52 GB of weights + 20% + 0.54 GB


@pytest.mark.parametrize(
    ("free_gib", "bf16", "four_bit", "label"),
    [
        (24, True, True, "fits in bf16 (~19.8 GB of 25.8 GB free VRAM)"),
        (16, False, True, "fits in 4-bit only (~6.0 GB of 17.2 GB free VRAM; bf16 ~19.8 GB)"),
        (4, False, False, "too big here (4-bit ~6.0 GB, 4.3 GB free VRAM)"),
    ],
)
def test_fit_against_free_memory(free_gib: int, bf16: bool, four_bit: bool, label: str) -> None:
    fit = Fit.of(LLAMA_8B, Memory(free_gib * GIB, "VRAM"))
    assert (fit.bf16, fit.four_bit, fit.label) == (bf16, four_bit, label)
    assert fit.as_dict()["bf16"] is bf16 and fit.as_dict()["4bit"] is four_bit


def test_the_edge_is_inclusive() -> None:
    needed = Fit.of(SMOLLM2_135M, Memory(0, "RAM")).bf16_bytes
    assert Fit.of(SMOLLM2_135M, Memory(needed, "RAM")).bf16
    assert not Fit.of(SMOLLM2_135M, Memory(needed - 1, "RAM")).bf16


def test_free_memory_names_ram_or_vram() -> None:
    memory = hub.free_memory()
    assert memory.kind in ("RAM", "VRAM") and memory.free_bytes > 0


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q8_0.gguf", "Q8_0"),
        ("model-IQ3_XXS.gguf", "IQ3_XXS"),
        ("phi-3-mini-f16.gguf", "F16"),
        ("model.gguf", None),
    ],
)
def test_gguf_quantization_is_named_from_the_file(name: str, quant: str | None) -> None:
    assert hub.gguf_quantization(Path(name)) == quant


def test_gguf_parameters_from_size_and_bits(tmp_path: Path) -> None:
    path = tmp_path / "m.Q4_0.gguf"
    with path.open("wb") as f:
        f.truncate(4_500_000)  # 8M weights at 4.5 bits
    assert hub.gguf_parameters(path) == 8_000_000
    assert hub.gguf_parameters(tmp_path / "unknown.gguf") is None


def test_capabilities_from_tags_pipeline_and_profiles() -> None:
    assert hub.capabilities("acme/vlm", "image-text-to-text", []).badges() == ("vision",)
    assert hub.capabilities("acme/x", "text-generation", ["tool-use", "Reasoning"]).badges() == ("tools", "reasoning")
    # LangChain's profile (models.dev): DeepSeek-R1 reasons, calls tools, reads 163k tokens.
    r1 = hub.capabilities("deepseek-ai/DeepSeek-R1-0528", "text-generation", [])
    assert (r1.tools, r1.reasoning, r1.context_length) == (True, True, 163840)
    assert r1.badges() == ("tools", "reasoning", "163k context")
    assert hub.capabilities("nobody/knows", None, []).badges() == ()


def _result(**kw: object) -> ModelResult:
    return ModelResult(**{"id": "acme/m", "parameters": LLAMA_8B, **kw})  # type: ignore[arg-type]


TEXT = {"task": "text-generation"}


def test_one_click_sets_a_live_provider_or_local() -> None:
    live = _result(providers=("together", "novita"), pipeline_tag="text-generation")
    assert live.choice() == {"backend": "providers", "model": "acme/m", "provider": "together", **TEXT}
    assert live.choice("novita")["provider"] == "novita"
    assert live.choice("sambanova")["provider"] == "together", "only a live provider is set"
    only_4bit = _result(fit=Fit.of(LLAMA_8B, Memory(16 * GIB, "RAM")))
    assert only_4bit.choice() == {"backend": "local", "model": "acme/m", "load_in_4bit": True, **TEXT}
    both = _result(providers=("together",), fit=Fit.of(LLAMA_8B, Memory(64 * GIB, "RAM")))
    assert both.choice("local") == {"backend": "local", "model": "acme/m", "load_in_4bit": False, **TEXT}
    vision = _result(providers=("novita",), pipeline_tag="image-text-to-text")
    assert vision.choice()["task"] == "image-text-to-text"
    gguf = _result(source=Source.GGUF, path="/m/x.Q4_1.gguf", quantization="Q4_1", fit=only_4bit.fit)
    assert gguf.choice() == {"backend": "local", "model": "/m/x.Q4_1.gguf", "load_in_4bit": False, **TEXT}


def test_filters() -> None:
    big = _result(id="acme/big", parameters=70 * 10**9, fit=Fit.of(70 * 10**9, Memory(8 * GIB, "RAM")))
    fit = Fit.of(10**9, Memory(8 * GIB, "RAM"))
    small = _result(id="acme/small", parameters=10**9, providers=("together",), fit=fit)
    seen = _result(id="acme/vlm", capabilities=Capabilities(vision=True))
    both = [big, small, seen]
    assert [r.id for r in both if hub.keep(r, Query(served=True))] == ["acme/small"]
    assert [r.id for r in both if hub.keep(r, Query(provider="novita"))] == []
    assert [r.id for r in both if hub.keep(r, Query(fits=True))] == ["acme/small"]
    assert [r.id for r in both if hub.keep(r, Query(task="vision"))] == ["acme/vlm"]
    assert [r.id for r in both if hub.keep(r, Query(min_params_b=2, max_params_b=100))] == ["acme/big", "acme/vlm"]
    local = _result(id="tiny-chat", source=Source.FOLDER)
    assert hub.keep(local, Query(query="chat")) and not hub.keep(local, Query(query="llama"))


def test_the_ttl_cache_reuses_then_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(hub.time, "monotonic", lambda: now[0])
    cache = hub.TTLCache(ttl=60)
    calls: list[int] = []
    assert cache.get("k", lambda: calls.append(1) or 1) == 1
    now[0] += 59
    assert cache.get("k", lambda: calls.append(2) or 2) == 1
    now[0] += 2
    assert cache.get("k", lambda: calls.append(3) or 3) == 3
    assert calls == [1, 3]


def test_api_objects_have_the_documented_fields() -> None:
    r = _result(providers=("together",), staging=("novita",), fit=Fit.of(LLAMA_8B, Memory(64 * GIB, "RAM")))
    out = r.as_dict()
    assert {"id", "providers", "parameters", "fits_locally", "capabilities"} <= set(out)
    assert out["providers"] == ["together"] and out["staging_providers"] == ["novita"]
    assert out["fits_locally"]["bf16"] is True
