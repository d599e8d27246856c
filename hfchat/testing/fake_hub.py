"""A loopback stand-in for the Hub's model API, in the Hub's own shapes, for the model picker.

`serve_fake_hub(recorder)` routes `GET /api/models` (a search: a JSON list, each model's
`inferenceProviderMapping` a *list* of `{provider, providerId, status, task}`) and
`GET /api/models/<id>` (model_info: the mapping a *dict* keyed by provider), as huggingface_hub
1.33 parses them (`ModelInfo.__init__`). The canned models cover what the picker must tell
apart: live and staging providers, no provider, a vision model, a gated model, one far too big.
"""

from __future__ import annotations

from typing import Any

from hfchat.testing.servers import RecordedRequest, Recorder, Response, json_response

GATED = "meta-llama/Llama-3.1-8B-Instruct"
"""Gated (manual); together serves it live, novita only in staging; tools and 128k in LangChain's profile."""
HUGE = "deepseek-ai/DeepSeek-R1-0528"
"""685B parameters: fits nowhere here; novita live; reasoning per the profile."""
VISION = "Qwen/Qwen2.5-VL-7B-Instruct"
"""image-text-to-text, served live by novita."""
SMALL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""135M parameters, no provider: fits in bf16 anywhere."""
STAGING_ONLY = "acme/staging-only-3b"
"""together has it in staging, nobody live."""


def _model(
    repo_id: str,
    params: int,
    pipeline_tag: str,
    providers: dict[str, str],
    gated: bool | str = False,
    tags: tuple[str, ...] = (),
    downloads: int = 1000,
) -> dict[str, Any]:
    return {
        "_id": repo_id.replace("/", "-"),
        "id": repo_id,
        "modelId": repo_id,
        "gated": gated,
        "pipeline_tag": pipeline_tag,
        "tags": ["transformers", "safetensors", "conversational", *tags],
        "downloads": downloads,
        "trendingScore": downloads // 100,
        "safetensors": {"parameters": {"BF16": params}, "total": params},
        "providers": providers,
    }


MODELS: list[dict[str, Any]] = [
    _model(GATED, 8_030_261_248, "text-generation", {"together": "live", "novita": "staging"}, "manual", (), 90000),
    _model(HUGE, 684_531_386_000, "text-generation", {"novita": "live"}, False, (), 80000),
    _model(VISION, 8_292_166_656, "image-text-to-text", {"novita": "live"}, False, ("multimodal",), 70000),
    _model(SMALL, 134_515_008, "text-generation", {}, False, (), 60000),
    _model(STAGING_ONLY, 3_090_000_000, "text-generation", {"together": "staging"}, False, (), 50000),
]


def _provider_id(repo_id: str, provider: str) -> str:
    return f"{provider}/{repo_id.split('/')[-1].lower()}"


def search_item(m: dict[str, Any]) -> dict[str, Any]:
    """A model as `/api/models` lists it: the mapping is a list."""
    item = {k: v for k, v in m.items() if k != "providers"}
    item["inferenceProviderMapping"] = [
        {"provider": p, "providerId": _provider_id(m["id"], p), "status": s, "task": "conversational"}
        for p, s in m["providers"].items()
    ]
    return item


def info_item(m: dict[str, Any]) -> dict[str, Any]:
    """A model as `/api/models/<id>` answers: the mapping is a dict keyed by provider."""
    item = {k: v for k, v in m.items() if k != "providers"}
    item["inferenceProviderMapping"] = {
        p: {"providerId": _provider_id(m["id"], p), "status": s, "task": "conversational"}
        for p, s in m["providers"].items()
    }
    return item


def _params_ok(m: dict[str, Any], spec: str) -> bool:
    """The Hub's `num_parameters=min:3B,max:10B` filter."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
    for part in filter(None, spec.split(",")):
        bound, _, value = part.partition(":")
        number = float(value[:-1]) * scale[value[-1].upper()] if value[-1].isalpha() else float(value)
        total = m["safetensors"]["total"]
        if (bound == "min" and total < number) or (bound == "max" and total > number):
            return False
    return True


def _search(req: RecordedRequest) -> Response:
    q = req.query
    text = (q.get("search") or [""])[0].lower()
    found = [m for m in MODELS if text in m["id"].lower()]
    if tag := (q.get("pipeline_tag") or [""])[0]:
        found = [m for m in found if m["pipeline_tag"] == tag]
    if provider := (q.get("inference_provider") or [""])[0]:
        found = [m for m in found if m["providers"] and (provider == "all" or provider in m["providers"])]
    if spec := (q.get("num_parameters") or [""])[0]:
        found = [m for m in found if _params_ok(m, spec)]
    key = "downloads" if (q.get("sort") or [""])[0] == "downloads" else "trendingScore"
    found.sort(key=lambda m: -m[key])
    return json_response([search_item(m) for m in found])


def _info(req: RecordedRequest) -> Response:
    repo_id = req.path.removeprefix("/api/models/")
    found = next((m for m in MODELS if m["id"] == repo_id), None)
    if found is None:
        return json_response({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
    return json_response(info_item(found))


def serve_fake_hub(recorder: Recorder) -> Recorder:
    """Route the Hub's search and model_info on `recorder` (a `Recorder` behind HF_ENDPOINT)."""
    recorder.route("GET", "/api/models/", _info)
    recorder.route("GET", "/api/models", _search)
    return recorder
