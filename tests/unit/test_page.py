"""The page's gradio-free parts: the model header's text, the settings panel's sections and
which controls show or are disabled (declared once, in `hfchat.settings`)."""

from __future__ import annotations

import pytest

from hfchat.header import model_header
from hfchat.settings import SAMPLING, SETTINGS, Backend, Group, SidebarSettings, control_shown


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"backend": "local", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "SmolLM2-135M-Instruct · Local"),
        (
            {"backend": "local", "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "load_in_4bit": True},
            "SmolLM2-135M-Instruct · Local · 4-bit",
        ),
        (
            {"backend": "local", "model": "/models/zephyr/", "load_in_4bit": True, "quant_type": "fp4"},
            "zephyr · Local · 4-bit fp4",
        ),
        (
            {
                "backend": "providers",
                "model": "deepseek-ai/DeepSeek-R1-0528",
                "provider": "together",
                "load_in_4bit": True,
            },
            "DeepSeek-R1-0528 · Inference Providers · together",
        ),
        ({"backend": "providers", "model": "org/m", "provider": ""}, "m · Inference Providers · auto"),
        (
            {"backend": "endpoint", "endpoint_url": "http://user:pw@127.0.0.1:8000/v1?key=s", "served_model": "tiny"},
            "tiny · Custom endpoint · 127.0.0.1:8000",
        ),
        ({"backend": "endpoint", "endpoint_url": ""}, "served model · Custom endpoint · no endpoint URL yet"),
        ({"backend": "local", "model": " "}, "no model yet · Local"),
        ({"backend": "nonsense"}, "no backend chosen"),
    ],
)
def test_the_header_names_model_backend_and_provider_or_4bit(values: dict, text: str) -> None:
    assert model_header(values) == text


def test_the_header_never_shows_credentials() -> None:
    text = model_header({"backend": "endpoint", "endpoint_url": "https://me:secret@example.com/?token=abc"})
    assert "secret" not in text and "abc" not in text and "example.com" in text


def test_settings_are_grouped_model_generation_then_advanced() -> None:
    groups = {name: s.control.group for name, s in SETTINGS.items()}
    model = ["backend", "model", "provider", "endpoint_url", "served_model", "task"]
    assert [n for n, g in groups.items() if g is Group.MODEL][: len(model)] == model
    generation = [n for n, g in groups.items() if g is Group.GENERATION]
    assert generation == ["system_prompt", "max_new_tokens", "do_sample", "temperature", "top_p"]
    advanced = {n for n, g in groups.items() if g is Group.ADVANCED}
    assert {"top_k", "repetition_penalty", "frequency_penalty", "seed", "load_in_4bit", "device"} <= advanced
    assert {"quant_type", "compute_dtype", "double_quant"} <= advanced
    assert groups["hf_token"] is Group.MODEL and groups["endpoint_api_key"] is Group.MODEL, "keys sit with the model"


def test_labels_are_for_people_and_the_help_names_the_api_parameter() -> None:
    for name, setting in SETTINGS.items():
        assert "_" not in setting.control.label, f"{name}: {setting.control.label!r} reads as an API name"
        assert f"API: {name}" in setting.control.help_text(name)
    assert SETTINGS["max_new_tokens"].control.label == "Max new tokens"
    assert SETTINGS["do_sample"].control.label == "Sampling"


def test_4bit_options_show_only_while_4bit_is_on_and_only_for_local_models() -> None:
    for name in ("quant_type", "compute_dtype", "double_quant"):
        assert not control_shown(name, Backend.LOCAL, {"load_in_4bit": False})
        assert control_shown(name, Backend.LOCAL, {"load_in_4bit": True})
        assert not control_shown(name, Backend.PROVIDERS, {"load_in_4bit": True})
    assert control_shown("load_in_4bit", Backend.LOCAL, {}) and control_shown("temperature", Backend.ENDPOINT, {})


def test_sampling_is_the_default_and_the_sampling_sliders_are_marked() -> None:
    defaults = SidebarSettings()
    assert (defaults.do_sample, defaults.temperature, defaults.top_p) == (True, 0.7, 0.95)
    assert set(SAMPLING) == {"temperature", "top_p", "top_k"}
