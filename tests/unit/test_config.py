"""Config validation: every bad value is refused with a message naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfchat.config import Backend, ModelSpec, build_settings
from hfchat.errors import ConfigError
from hfchat.providers import chat_providers
from hfchat.settings import SETTINGS
from tests.fixtures import sidebar_values


def bounds(name: str) -> tuple[float, float]:
    return SETTINGS[name].range


def values(**overrides: Any) -> dict[str, Any]:
    """Sidebar values for the seed's default: DeepSeek-R1 on Inference Providers."""
    defaults: dict[str, Any] = dict(
        backend="providers",
        model="deepseek-ai/DeepSeek-R1-0528",
        max_new_tokens=64,
        device="auto",
        token_fingerprint="anonymous",
    )
    return sidebar_values(**{**defaults, **overrides})


def test_valid_settings_are_frozen_and_hashable() -> None:
    settings = build_settings(**values())
    assert settings.spec.backend is Backend.PROVIDERS
    assert settings.generation.seed is None  # random
    with pytest.raises(ValueError):
        settings.spec.model = "x"  # type: ignore[misc]
    assert hash(settings.spec) == hash(build_settings(**values()).spec)


def test_sampling_is_not_part_of_the_cache_key() -> None:
    a = build_settings(**values(temperature=0.1, top_p=0.5, seed=3, max_new_tokens=10))
    b = build_settings(**values(temperature=1.5, top_p=0.9, seed=-1, max_new_tokens=900, do_sample=True))
    assert a.spec == b.spec
    assert a.generation != b.generation


def test_controls_of_other_backends_do_not_change_the_key() -> None:
    a = build_settings(**values(backend="local", model="org/model", provider="together", endpoint_url="http://a"))
    b = build_settings(**values(backend="local", model="org/model", provider="groq", endpoint_url="http://b"))
    assert a.spec == b.spec
    assert a.spec.provider is None and a.spec.endpoint_url is None
    c = build_settings(**values(load_in_4bit=True, device="cpu"))  # providers: no 4-bit, no device
    assert c.spec.quantization is None and c.spec.device is None


def test_key_holds_quantization_device_and_token_fingerprint() -> None:
    plain = build_settings(**values(backend="local", model="org/model", device="cpu")).spec
    four = build_settings(**values(backend="local", model="org/model", device="cpu", load_in_4bit=True)).spec
    other_token = build_settings(**values(backend="local", model="org/model", device="cpu", token_fingerprint="x")).spec
    assert len({plain, four, other_token}) == 3
    assert four.quantization is not None and four.quantization.quant_type == "nf4"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10**9}, "max_new_tokens"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"frequency_penalty": 3.0}, "frequency_penalty"),
        ({"seed": -5}, "seed"),
        ({"seed": math.nan}, "seed"),
        ({"do_sample": True, "temperature": 0.0}, "temperature"),
        ({"model": ""}, "model"),
        ({"model": "../../etc"}, "model"),
        ({"model": "https://huggingface.co/org/model"}, "model"),
        ({"model": "a" * 97}, "model"),
        ({"model": "deepseek-ai/DeepSeek-R1-0528".replace("e", "\u0435")}, "model"),  # Cyrillic е
        ({"model": "org/mode\u217c"}, "model"),  # Roman numeral ⅼ
        ({"model": "org/model\u200b"}, "model"),  # zero-width space
        ({"backend": "local", "model": "Οrg/model"}, "model"),  # Greek capital omicron
        ({"provider": "nebius-typo"}, "provider"),
        ({"backend": "gpu"}, "backend"),
        ({"backend": "endpoint", "endpoint_url": ""}, "endpoint_url"),
        ({"backend": "endpoint", "endpoint_url": "ftp://host"}, "endpoint_url"),
        ({"backend": "endpoint", "endpoint_url": "localhost:8000"}, "endpoint_url"),
        ({"backend": "local", "model": "./no/such/folder"}, "model"),
        ({"task": "summarize"}, "task"),
        ({"backend": "local", "model": "org/m", "load_in_4bit": True, "quant_type": "int3"}, "quant_type"),
        ({"backend": "local", "model": "org/m", "device": "tpu"}, "device"),
    ],
)
def test_bad_values_are_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_settings(**values(**overrides))
    assert info.value.field == field
    assert field in info.value.message
    assert info.value.hint, "every refusal says how to fix it"


def test_unknown_provider_message_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        build_settings(**values(provider="nebius-typo"))
    for name in chat_providers():
        assert name in info.value.message


def test_provider_list_comes_from_huggingface_hub() -> None:
    from huggingface_hub.inference._providers import PROVIDERS

    names = chat_providers()
    assert names[0] == "auto"
    assert set(names[1:]) == {p for p, tasks in PROVIDERS.items() if "conversational" in tasks}


def test_local_folder_is_accepted(tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text("{}")
    settings = build_settings(**values(backend="local", model=str(tmp_path), device="cpu"))
    assert settings.spec.model == str(tmp_path)


def test_served_model_only_for_endpoints() -> None:
    endpoint = build_settings(**values(backend="endpoint", endpoint_url="http://127.0.0.1:1", served_model=" m "))
    assert endpoint.served_model == "m"
    assert build_settings(**values(served_model="m")).served_model is None


@given(
    temperature=st.floats(allow_nan=True, allow_infinity=True),
    top_p=st.floats(allow_nan=True, allow_infinity=True),
    max_new_tokens=st.one_of(st.integers(), st.floats(allow_nan=True)),
)
def test_property_settings_are_valid_or_refused_with_a_field(
    temperature: float, top_p: float, max_new_tokens: Any
) -> None:
    try:
        settings = build_settings(**values(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens))
    except ConfigError as exc:
        assert exc.field in {"temperature", "top_p", "max_new_tokens"}
        return
    gen = settings.generation
    assert bounds("temperature")[0] <= gen.temperature <= bounds("temperature")[1]
    assert bounds("top_p")[0] <= gen.top_p <= bounds("top_p")[1]
    assert isinstance(gen.max_new_tokens, int)
    assert bounds("max_new_tokens")[0] <= gen.max_new_tokens <= bounds("max_new_tokens")[1]


@given(model=st.text(max_size=120))
def test_property_repo_ids_never_escape_validation(model: str) -> None:
    try:
        spec = build_settings(**values(model=model)).spec
    except ConfigError as exc:
        assert exc.field == "model"
        return
    assert ".." not in spec.model and "://" not in spec.model and len(spec.model) <= 96
    assert ModelSpec.model_validate(spec.model_dump()) == spec


def test_endpoint_credentials_never_shown() -> None:
    from hfchat.config import display_url

    assert display_url("https://user:secret@host.example:8443/v1?key=abc") == "https://host.example:8443/v1"
    spec = build_settings(**values(backend="endpoint", endpoint_url="http://u:secret@127.0.0.1:8000")).spec
    assert "secret" not in spec.where


def test_retry_policy_backs_off_exponentially_and_honours_retry_after() -> None:
    from hfchat.config import RetryPolicy

    policy = RetryPolicy(retries=4, backoff=0.5, max_wait=3)
    assert [policy.delay(n, None) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, None]
    assert policy.delay(0, 2) == 2, "Retry-After within the cap is what we wait"
    assert policy.delay(0, 3.5) is None, "beyond the cap: give up and show it"
    assert RetryPolicy(retries=0).delay(0, None) is None


@given(
    retries=st.integers(0, 10),
    backoff=st.floats(0, 60),
    max_wait=st.floats(0, 300),
    attempt=st.integers(0, 20),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=False, min_value=-10, max_value=1e6)),
)
def test_property_retry_waits_are_bounded(
    retries: int, backoff: float, max_wait: float, attempt: int, retry_after: float | None
) -> None:
    from hfchat.config import RetryPolicy

    wait = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait).delay(attempt, retry_after)
    if attempt >= retries:
        assert wait is None
    if wait is not None:
        assert 0 <= wait <= max_wait
        if retry_after is not None:
            assert wait == retry_after


def test_local_folders_outside_the_roots_are_refused_by_their_text(tmp_path: Any) -> None:
    from hfchat.config import check_local_dir

    root, outside = tmp_path / "models", tmp_path / "elsewhere"
    for folder in (root / "good", outside):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    roots = (str(root),)
    check_local_dir(str(root / "good"), roots)
    check_local_dir("org/model", roots)  # a repo ID is not a folder
    for bad in (str(outside), f"{root}/../elsewhere", f"{root}-sibling/x", "/etc", "~/x", "../../etc"):
        with pytest.raises(ConfigError) as info:
            check_local_dir(bad, roots)
        assert info.value.field == "model" and "--local-dirs" in info.value.hint
    (root / "link").symlink_to(outside)
    with pytest.raises(ConfigError):
        check_local_dir(str(root / "link"), roots)
    check_local_dir(str(outside), ())  # no roots configured: any folder
    settings = build_settings(**values(backend="local", model=str(root / "good"), device="cpu"), local_dirs=roots)
    assert settings.spec.model == str(root / "good")
    with pytest.raises(ConfigError):
        build_settings(**values(backend="local", model=str(outside), device="cpu"), local_dirs=roots)


NUMERIC = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "frequency_penalty", "seed")
junk = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@given(raw=st.fixed_dictionaries({}, optional={name: junk for name in NUMERIC}), do_sample=st.booleans())
def test_property_any_numeric_input_is_valid_or_refused_naming_its_field(raw: dict[str, Any], do_sample: bool) -> None:
    try:
        settings = build_settings(**values(**raw, do_sample=do_sample))
    except ConfigError as exc:
        assert exc.field in raw, f"the refusal names a field that was sent: {exc.field} {exc.message}"
        assert exc.message.startswith(f"{exc.field}:")
        return
    gen = settings.generation
    for name in NUMERIC:
        value = getattr(gen, name)
        if name == "seed" and value is None:
            continue  # -1 (or None) means random
        low, high = bounds(name)
        assert math.isfinite(value) and low <= value <= high, (name, value)
        if name in ("max_new_tokens", "top_k", "seed"):
            assert isinstance(value, int) and not isinstance(value, bool)


segments = st.lists(st.sampled_from(["a", "b", "..", ".", "models", "x y", "é"]), max_size=6)


@given(parts=segments, absolute=st.booleans())
def test_property_local_dirs_accept_exactly_the_paths_under_a_root(parts: list[str], absolute: bool) -> None:
    import os

    from hfchat.config import check_local_dir

    root = "/nonexistent-hfchat-root/models"
    model = "/".join([root, *parts]) if absolute else "/".join(["..", *parts])
    inside = os.path.normpath(os.path.join(os.getcwd(), model)) + "/"
    try:
        check_local_dir(model, (root,))
    except ConfigError as exc:
        assert exc.field == "model"
        assert not inside.startswith(root + "/")
        return
    assert inside.startswith(root + "/"), f"{model} was let through"


@given(text=st.text(max_size=60), limit=st.integers(1, 50))
def test_property_message_limit_is_exact(text: str, limit: int) -> None:
    from hfchat.config import InputLimits

    try:
        InputLimits(max_message_chars=limit).check_text("message", text)
    except ConfigError as exc:
        assert len(text) > limit and exc.field == "message"
        return
    assert len(text) <= limit


def test_a_local_folder_on_providers_says_to_pick_local(tmp_path: Any) -> None:
    """Switching to Providers keeps the folder in the model box: say so in our words, not
    huggingface_hub's ("Use repo_type argument if needed")."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError) as caught:
        build_settings(**values(model=str(tmp_path)))
    error = caught.value
    assert error.field == "model"
    assert "is a local folder path; pick Local" in error.message and "repo ID" in error.message
    assert "repo_type" not in str(error) and "namespace/repo_name" not in str(error)


def test_an_invalid_repo_id_is_explained_without_library_text() -> None:
    with pytest.raises(ConfigError) as caught:
        build_settings(**values(model="org/" + "m" * 97))
    assert "not a valid Hugging Face repo ID; a repo ID is owner/name" in caught.value.message
    assert "repo_type" not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"temperature": 0.0, "do_sample": True}, "temperature"), ({"max_new_tokens": 0}, "max_new_tokens")],
)
def test_an_invalid_setting_names_its_control_and_its_api_name(overrides: dict[str, Any], field: str) -> None:
    """One hint for people on the page and for programs: the label and the API name, and no
    "(or the API call)" tacked on."""
    with pytest.raises(ConfigError) as caught:
        build_settings(**values(**overrides))
    hint = caught.value.hint
    assert SETTINGS[field].control.label in hint and f"`{field}`" in hint, hint
    assert "(or the API call)" not in str(caught.value)


def test_config_errors_outside_the_schema_have_a_plain_hint() -> None:
    error = ConfigError("preset: no such preset.", field="preset")
    assert error.hint == "Correct it and send again." and "API call" not in error.hint
