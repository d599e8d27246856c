"""Local vision-language models: transformers' `image-text-to-text` pipeline, streamed.

LangChain's HuggingFacePipeline runs only text tasks, so image chats call the transformers
pipeline directly. The generate thread, Stop and fail-fast are the text path's
(`local.stream_generation`); so are the device, 4-bit and token handling.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage

from hfchat.backends.chat_model import refuses_system
from hfchat.backends.local import (
    LOAD_LOCK,
    FailFastStreamer,
    LocalBackend,
    call_kwargs,
    check_architecture,
    eos_ids,
    placement,
    quantization_config,
    stream_generation,
)
from hfchat.backends.source import local_source
from hfchat.backends.types import Delta
from hfchat.config import ChatSettings, ModelSpec
from hfchat.errors import UnsupportedTaskError
from hfchat.fairqueue import DeviceQueues
from hfchat.images import IMAGE_TASK, decode_data_url
from hfchat.messages import fold_system_prompt
from hfchat.space import on_gpu
from hfchat.tools.types import ToolSpec


@dataclass
class VisionChat:
    """A loaded image-text-to-text pipeline, as the model cache holds it."""

    pipeline: Any
    fold_system: bool = False


def _check_template(processor: Any, model: str) -> None:
    """Images are placed in the prompt by the processor's chat template: refuse a model without one."""
    if not getattr(processor, "chat_template", None):
        raise UnsupportedTaskError(
            f"{model} has no chat template in its processor, so images can't be placed in the prompt.",
            "Choose a vision-language chat model (for example HuggingFaceTB/SmolVLM-256M-Instruct).",
        )


def _check_vision_model(spec: ModelSpec, token: str | None) -> None:
    """Refuse a text-only model before loading it: the pipeline's own error is cryptic."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config = check_architecture(spec, token)
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise UnsupportedTaskError(
            f"{spec.model} is a {config.model_type} model, which can't read images: the "
            "image-text-to-text pipeline needs a vision-language model.",
            "Set Task to text-generation for this model, or choose a vision-language model "
            "(Llava, Idefics3, SmolVLM, Qwen2-VL, ...).",
        )


def build(spec: ModelSpec, token: str | None) -> VisionChat:
    _check_vision_model(spec, token)
    source = local_source(spec.model)
    model_kwargs: dict[str, Any] = dict(source.options)
    if spec.quantization is not None:
        model_kwargs["quantization_config"] = quantization_config(spec.quantization)
    # The module, not transformers' lazy `transformers.pipeline`, which raised AttributeError while
    # the context meter's thread imported transformers (CI: test_browser_images, an internal error).
    from transformers.pipelines import pipeline

    with LOAD_LOCK:  # overlapping from_pretrained calls break weight tying (see LOAD_LOCK)
        pipe = pipeline(
            IMAGE_TASK,
            model=source.path,
            token=token,
            trust_remote_code=False,
            model_kwargs=model_kwargs,
            **placement(spec),
        )
    _check_template(pipe.processor, spec.model)
    return VisionChat(pipeline=pipe, fold_system=refuses_system(pipe.processor, content_parts=True))


def model_of(chat: VisionChat) -> Any:
    """The transformers model inside a built chat, for footprint checks and cleanup."""
    return chat.pipeline.model


def to_pipeline_chat(messages: Sequence[BaseMessage], fold_system: bool = False) -> list[dict[str, Any]]:
    """LangChain messages as the pipeline's chat: content parts, images decoded to PIL.

    Images arrive as the data URLs `hfchat.images` made; they are decoded here, so the
    pipeline never fetches a URL.
    """
    chat = []
    for message in fold_system_prompt(messages) if fold_system else messages:
        role = (
            "system"
            if isinstance(message, SystemMessage)
            else "assistant"
            if isinstance(message, AIMessage)
            else "user"
        )
        parts: list[dict[str, Any]] = []
        for part in [message.content] if isinstance(message.content, str) else message.content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            elif isinstance(part, Mapping) and part.get("type") == "image_url":
                parts.append({"type": "image", "image": decode_data_url(part["image_url"]["url"])})
        chat.append({"role": role, "content": parts})
    return chat


def _stream(
    chat: VisionChat,
    messages: Sequence[BaseMessage],
    settings: ChatSettings,
    cancel: threading.Event,
    queues: DeviceQueues,
    tools: Sequence[ToolSpec] = (),
) -> Iterator[Delta]:
    """The reply's deltas; setting `cancel` ends the generate thread at the next token."""
    kwargs = call_kwargs(settings)
    conversation = to_pipeline_chat(messages, chat.fold_system)

    def generate(streamer: FailFastStreamer, criteria: Any) -> Any:
        settings_now = {**kwargs["pipeline_kwargs"], "streamer": streamer, "stopping_criteria": criteria}
        return chat.pipeline(text=conversation, generate_kwargs=settings_now, return_full_text=False)

    tokenizer = chat.pipeline.processor.tokenizer
    yield from stream_generation(
        generate,
        tokenizer,
        cancel,
        queues.for_device(str(chat.pipeline.device)),
        kwargs["seed"],
        max_new_tokens=kwargs["pipeline_kwargs"]["max_new_tokens"],
        eos=eos_ids(chat.pipeline.model),
    )


VISION = LocalBackend(build=build, stream=on_gpu(_stream), model_of=model_of)
"""Local image-text-to-text models: the local text path's settings, transformers' own pipeline."""
