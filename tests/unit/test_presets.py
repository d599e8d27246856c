"""Presets: built-ins, saving, applying, and refusing what is not a sidebar setting."""

from __future__ import annotations

import inspect

import pytest

from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.config import Backend, build_settings
from hfchat.errors import ConfigError
from hfchat.presets import (
    BUILTIN_PRESETS,
    CONTROL_NAMES,
    MAX_USER_PRESETS,
    SEED_NOTES,
    ControlValues,
    control_values,
    delete_preset,
    dump_user_presets,
    find_preset,
    load_user_presets,
    preset_names,
    save_preset,
    values_from_controls,
)
from tests.fixtures import SENTINEL_TOKEN


def test_presets_cover_every_control_but_the_token() -> None:
    chat = make_chat_fn(ChatService(), parse_options([], {}))
    params = list(inspect.signature(chat).parameters)[2:]
    # never stored: the session's credentials (a visitor's MCP URL may carry a key) and Gradio's own
    credentials_and_gradio = {"hf_token", "endpoint_api_key", "mcp_url", "oauth_token", "request"}
    missing = set(params) - credentials_and_gradio - set(CONTROL_NAMES)
    assert not missing, f"presets and exports would leave out {missing}: add them to ControlValues"
    assert not {"hf_token", "endpoint_api_key", "mcp_url"} & set(CONTROL_NAMES)


def test_builtins_are_the_seed_models_and_a_cpu_one() -> None:
    by_model = {(p.values.backend, p.values.model, p.values.load_in_4bit): p for p in BUILTIN_PRESETS}
    assert (Backend.PROVIDERS, "deepseek-ai/DeepSeek-R1-0528", False) in by_model
    assert (Backend.LOCAL, "HuggingFaceH4/zephyr-7b-beta", False) in by_model
    four_bit = by_model[(Backend.LOCAL, "HuggingFaceH4/zephyr-7b-beta", True)].values
    assert (four_bit.quant_type, four_bit.compute_dtype, four_bit.double_quant) == ("nf4", "float16", True)
    small = by_model[(Backend.LOCAL, "HuggingFaceTB/SmolLM2-135M-Instruct", False)].values
    assert small.device == "cpu"
    assert by_model[(Backend.PROVIDERS, "deepseek-ai/DeepSeek-R1-0528", False)].values.provider == "auto"


@pytest.mark.parametrize("preset", BUILTIN_PRESETS, ids=lambda p: p.name)
def test_every_builtin_builds_valid_chat_settings(preset) -> None:
    """Applied and sent, a built-in passes the same validation as a typed configuration."""
    settings = build_settings(**preset.values.model_dump(), token_fingerprint="anonymous")
    assert settings.spec.model == preset.values.model
    assert settings.generation.max_new_tokens == 512


def test_the_seed_notes_preset_is_greedy_with_the_notes_penalty_and_the_app_samples_by_default() -> None:
    seed = find_preset(SEED_NOTES, []).values
    assert (seed.do_sample, seed.repetition_penalty, seed.max_new_tokens) == (False, 1.03, 512)
    defaults = ControlValues()
    assert (defaults.do_sample, defaults.temperature, defaults.top_p) == (True, 0.7, 0.95)
    assert all(p.values.do_sample for p in BUILTIN_PRESETS if p.name != SEED_NOTES), "the others sample"


def test_save_then_apply_round_trip_through_browser_storage() -> None:
    sidebar = {
        **ControlValues().as_controls(),
        "backend": "endpoint",
        "endpoint_url": "http://127.0.0.1:8000",
        "max_new_tokens": 64.0,  # sliders send floats
        "seed": 7.0,
        "temperature": 0.3,
        "hf_token": SENTINEL_TOKEN,
    }
    values = values_from_controls(sidebar)
    presets = save_preset("  my endpoint ", values, [])
    stored = dump_user_presets(presets)
    assert SENTINEL_TOKEN not in repr(stored)
    loaded = load_user_presets(stored)
    applied = find_preset("my endpoint", loaded).values.as_controls()
    assert applied["backend"] == "endpoint" and applied["max_new_tokens"] == 64 and applied["seed"] == 7
    assert "hf_token" not in applied
    assert preset_names(loaded)[-1] == "my endpoint"
    assert preset_names(loaded)[: len(BUILTIN_PRESETS)] == [p.name for p in BUILTIN_PRESETS]


def test_saving_an_existing_name_replaces_it_in_place() -> None:
    a, b = ControlValues(model="a/a"), ControlValues(model="b/b")
    presets = save_preset("two", b, save_preset("one", a, []))
    presets = save_preset("one", b, presets)
    assert [(p.name, p.values.model) for p in presets] == [("one", "b/b"), ("two", "b/b")]
    assert [p.name for p in delete_preset("one", presets)] == ["two"]


@pytest.mark.parametrize(
    ("name", "words"),
    [("", "enter a name"), ("x" * 61, "at most 60"), (BUILTIN_PRESETS[0].name, "built-in")],
)
def test_bad_names_are_refused(name: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        save_preset(name, ControlValues(), [])


def test_builtins_cannot_be_deleted_and_the_store_is_bounded() -> None:
    with pytest.raises(ConfigError, match="built in"):
        delete_preset(BUILTIN_PRESETS[0].name, [])
    presets = []
    for i in range(MAX_USER_PRESETS):
        presets = save_preset(f"p{i}", ControlValues(), presets)
    with pytest.raises(ConfigError, match="Delete one"):
        save_preset("one more", ControlValues(), presets)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"hf_token": SENTINEL_TOKEN}, "hf_token: not a sidebar setting"),
        ({"temperatur": 0.5}, "temperatur: not a sidebar setting"),
        ({"temperature": 9}, "temperature: Input should be less than or equal to 2"),
        ({"backend": "cloud"}, "backend"),
        ({"provider": "nowhere"}, "unknown provider 'nowhere'"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"quant_type": "int3"}, "quant_type"),
        ({"task": "summarization"}, "unknown task 'summarization'"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(raw: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        control_values(raw, "preset")
    assert SENTINEL_TOKEN not in str(caught.value)


def test_endpoint_credentials_never_kept() -> None:
    values = control_values({"endpoint_url": "https://user:secret@example.com:8443/v1?api_key=secret"})
    assert values.endpoint_url == "https://example.com:8443/v1"
    assert "secret" not in control_values({"endpoint_url": "user:secret@host"}).endpoint_url


def test_unreadable_stored_presets_are_skipped() -> None:
    good = dump_user_presets(save_preset("ok", ControlValues(), []))
    stored = [
        {"name": "bad", "values": {"temperature": "hot"}},
        "junk",
        *good,
        *good,
        {"name": BUILTIN_PRESETS[0].name},
    ]
    assert [p.name for p in load_user_presets(stored)] == ["ok"]
    assert load_user_presets("not a list") == []
    assert load_user_presets(None) == []


def test_a_preset_holds_every_value_so_applying_is_repeatable() -> None:
    applied = BUILTIN_PRESETS[0].values.as_controls()
    assert set(applied) == set(CONTROL_NAMES)
    assert applied["backend"] == "providers"
    assert applied["model"] == "deepseek-ai/DeepSeek-R1-0528" and applied["provider"] == "auto"
