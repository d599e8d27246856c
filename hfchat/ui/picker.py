"""The model picker: search the Hub (and this machine), see where each model can run, and set
it with one click. The data and every decision are in `hfchat.hub`; this module draws them.

It sits in the settings panel ("Find a model"); clicking the model header opens the panel and
unfolds it. Typing is debounced in the browser (DEBOUNCE_MS after the last key, or Enter), so a
search is one Hub call, not one per key; answers are cached (`hub.SEARCH_TTL_S`). The visitor's
token (their box, their sign-in, then the server's) goes with each Hub call, so their gated and
private models show; it is never shown or logged. `/search_models` is the same search for scripts.
"""

import html
from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat import hub
from hfchat.cli import AppOptions
from hfchat.providers import chat_providers
from hfchat.tokens import resolve_token

DEBOUNCE_MS = 400

TASKS = [("Any chat model", "any"), ("Chat (text)", "chat"), ("Vision (images in)", "vision")]
SORTS = [("Trending", hub.Sort.TRENDING.value), ("Downloads", hub.Sort.DOWNLOADS.value)]

HOOKS_JS = f"""
// Mounted with the page (the picker's own blocks mount only when it is unfolded): puts the
// picker first in the settings panel, unfolds it when the model header is clicked, and sends
// the search box's text DEBOUNCE_MS after the last key (at once on Enter).
const place = () => {{
  const picker = document.querySelector('#model-picker');
  if (!picker) {{ setTimeout(place, 100); return; }}
  picker.style.order = '-1';
}};
place();
const hooks = document.querySelector('#picker-hooks');
if (hooks) hooks.style.display = 'none';
let timer = null;
const inBox = (ev) => ev.target && ev.target.closest && ev.target.closest('#picker-search');
const send = (input) => {{ clearTimeout(timer); trigger('submit', {{query: input.value}}); }};
document.addEventListener('input', (ev) => {{
  if (!inBox(ev)) return;
  clearTimeout(timer);
  timer = setTimeout(() => send(ev.target), {DEBOUNCE_MS});
}});
document.addEventListener('keydown', (ev) => {{
  if (ev.key === 'Enter' && inBox(ev)) {{ ev.preventDefault(); send(ev.target); }}
}});
document.addEventListener('click', (ev) => {{
  if (!(ev.target.closest && ev.target.closest('#model-header'))) return;
  const picker = document.querySelector('#model-picker');
  const fold = picker && picker.querySelector(':scope > button.label-wrap');
  if (fold && !fold.classList.contains('open')) fold.click();
  if (picker) setTimeout(() => picker.scrollIntoView({{block: 'start'}}), 300);
}});
"""

RESULTS_JS = """
// A search sent while another runs may be dropped: when the results shown are for another
// text than the box holds now, ask again for what it holds (answers are cached).
const box = () => document.querySelector('#picker-search input, #picker-search textarea');
watch('value', () => {
  const shown = element.querySelector('[data-query]');
  const input = box();
  if (shown && input && shown.dataset.query !== input.value) trigger('submit', {query: input.value});
});
element.addEventListener('click', (ev) => {
  const button = ev.target.closest('button[data-id]');
  if (button && element.contains(button)) trigger('select', {id: button.dataset.id, how: button.dataset.how});
});
"""

PICKER_CSS = """
font-family: var(--font); color: var(--body-text-color); font-size: 13px; line-height: 1.35;
.status { margin: 4px 2px 8px; color: var(--body-text-color-subdued); }
.status.warn { color: var(--error-text-color, #b91c1c); }
ul { list-style: none; margin: 0; padding: 0; }
li.result { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 8px; margin: 0 0 6px; }
.name { display: block; width: 100%; text-align: left; background: none; border: 0; padding: 0; cursor: pointer;
  font: inherit; font-weight: 600; color: var(--body-text-color); overflow-wrap: anywhere; }
.name:hover { color: var(--color-accent); }
.facts { color: var(--body-text-color-subdued); margin: 2px 0; }
.badges { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 3px; }
.badge { font-size: 11px; padding: 1px 6px; border-radius: 999px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); }
.badge.cap { background: var(--color-accent-soft); }
.badge.gated { border-color: #d97706; }
.badge.nofit { opacity: 0.7; }
button.run { font-size: 11px; padding: 1px 7px; border-radius: 999px; cursor: pointer;
  border: 1px solid var(--color-accent); background: var(--background-fill-primary); color: var(--body-text-color); }
button.run:hover { background: var(--color-accent-soft); }
"""


def _badge(text: str, cls: str = "") -> str:
    return f'<span class="badge {cls}">{html.escape(text)}</span>'


def _run(result: hub.ModelResult, how: str, label: str) -> str:
    rid = html.escape(result.id, quote=True)
    return (
        f'<button class="run" data-id="{rid}" data-how="{html.escape(how, quote=True)}">{html.escape(label)}</button>'
    )


def result_html(r: hub.ModelResult) -> str:
    """One result: its ID (a click sets it), size, gated, live providers (each a click), fit, badges."""
    rid = html.escape(r.id, quote=True)
    facts = [hub.params_label(r.parameters)]
    if r.source is not hub.Source.HUB:
        facts.append({"cache": "in the HF cache", "folder": "local folder", "gguf": "GGUF file"}[r.source.value])
    if r.quantization:
        facts.append(f"quantization {r.quantization}")
    if r.fit is not None:
        facts.append(r.fit.label)
    runs = [_run(r, p, f"▶ {p}") for p in r.providers]
    if r.fit is not None and r.fit.four_bit:
        local = "▶ local" if r.fit.bf16 or r.quantization else "▶ local 4-bit"
        runs.append(_run(r, "local", local))
    badges = [_badge(b, "cap") for b in r.capabilities.badges()]
    if r.gated:
        badges.insert(0, _badge("gated", "gated"))
    if r.staging:
        badges.append(_badge("staging: " + ", ".join(r.staging), "nofit"))
    if not r.providers and not r.local:
        badges.append(_badge("no live provider", "nofit"))
    title = html.escape(r.path or r.id, quote=True)
    return (
        f'<li class="result" data-result="{rid}"><button class="name" data-id="{rid}" data-how="" title="{title}">'
        f"{html.escape(r.id)}</button>"
        f'<div class="facts">{html.escape(" · ".join(facts))}</div>'
        f'<div class="badges">{"".join(runs)}{"".join(badges)}</div></li>'
    )


def results_html(found: hub.SearchResult | None, query: str = "", note: str = "") -> str:
    if found is None:
        return f'<p class="status">{html.escape(note or "Type to search the Hub.")}</p>'
    head = ""
    if found.hub_error is not None:
        said = html.escape(str(found.hub_error))  # its message and its hint
        head = f'<p class="status warn" role="alert">{said}</p>'
    count = f"{len(found.results)} model{'s' if len(found.results) != 1 else ''}"
    body = "".join(result_html(r) for r in found.results)
    asked = html.escape(query, quote=True)
    return f'{head}<p class="status" data-query="{asked}">{count}</p><ul>{body}</ul>'


def local_shown(options: AppOptions) -> bool:
    """Local sources show unless this is a public deployment that loads no local model."""
    policy = options.deployment_policy
    return not policy.public or bool(policy.allowed) or policy.max_params is not None


def _query(
    query: Any, task: Any, served: Any, provider: Any, min_b: Any, max_b: Any, fits: Any, sort: Any, local: bool
) -> hub.Query:
    def number(v: Any) -> float | None:
        try:
            return float(v) if v not in (None, "") and float(v) > 0 else None
        except (TypeError, ValueError):
            return None

    try:
        order = hub.Sort(sort or hub.Sort.TRENDING.value)
    except ValueError:
        order = hub.Sort.TRENDING
    return hub.Query(
        query=str(query or ""),
        task=task if task in ("any", "chat", "vision") else "any",
        served=bool(served),
        provider=str(provider or "").strip(),
        min_params_b=number(min_b),
        max_params_b=number(max_b),
        fits=bool(fits),
        sort=order,
        local=local,
    )


def model_picker(options: AppOptions, controls: dict[str, Component]) -> None:
    """The picker, rendered where it is called (the settings panel), wired to set `controls`."""
    local = local_shown(options)
    roots: Sequence[str] = options.limits.local_dirs if local else ()
    hooks = gr.HTML("", js_on_load=HOOKS_JS, elem_id="picker-hooks", apply_default_css=False, padding=False)
    with gr.Accordion("Find a model", open=False, elem_id="model-picker"):
        search_box = gr.Textbox(
            label="Search the Hub", placeholder="e.g. llama, qwen, smollm", elem_id="picker-search", max_lines=1
        )
        task = gr.Dropdown(TASKS, value="any", label="Kind of model", elem_id="picker-task")
        sort = gr.Radio(SORTS, value=hub.Sort.TRENDING.value, label="Sort by", elem_id="picker-sort")
        served = gr.Checkbox(False, label="Served by Inference Providers", elem_id="picker-served")
        provider = gr.Dropdown(
            [("Any provider", ""), *[(p, p) for p in chat_providers() if p != "auto"]],
            value="",
            label="Served by this provider",
            elem_id="picker-provider",
        )
        with gr.Row():
            min_b = gr.Number(None, label="Min size (B params, 0 = any)", elem_id="picker-min", minimum=0, min_width=90)
            max_b = gr.Number(None, label="Max size (B params, 0 = any)", elem_id="picker-max", minimum=0, min_width=90)
        fits = gr.Checkbox(False, label="Fits on this machine", elem_id="picker-fits")
        listing = gr.HTML(
            results_html(None),
            css_template=PICKER_CSS,
            js_on_load=RESULTS_JS,
            apply_default_css=False,
            elem_id="picker-results",
            padding=False,
        )
    found = gr.State({})
    filters = [task, served, provider, min_b, max_b, fits, sort]
    quiet: dict[str, Any] = dict(show_progress="hidden", api_visibility="private")

    def run(
        query: str,
        task: str,
        served: bool,
        provider: str,
        min_b: float | None,
        max_b: float | None,
        fits: bool,
        sort: str,
        session_token: str | None,
        oauth_token: gr.OAuthToken | None,
    ) -> tuple[str, dict[str, hub.ModelResult]]:
        q = _query(query, task, served, provider, min_b, max_b, fits, sort, local)
        token = resolve_token(session_token, oauth_token.token if oauth_token else None)
        result = hub.search(q, token, roots)
        return results_html(result, str(query or "")), {r.id: r for r in result.results}

    def typed(
        query: str,
        task: str,
        served: bool,
        provider: str,
        min_b: float | None,
        max_b: float | None,
        fits: bool,
        sort: str,
        session_token: str | None,
        evt: gr.EventData,
        oauth_token: gr.OAuthToken | None,
    ) -> tuple[str, dict[str, hub.ModelResult]]:
        sent = getattr(evt, "query", None)  # what the box held when the typing paused
        text = sent if isinstance(sent, str) else query
        return run(text, task, served, provider, min_b, max_b, fits, sort, session_token, oauth_token)

    inputs = [search_box, *filters, controls["hf_token"]]
    outputs = [listing, found]
    for sender in (hooks, listing):  # the box's typing, and a re-ask from the results
        sender.submit(typed, inputs, outputs, trigger_mode="always_last", **quiet)  # type: ignore[attr-defined]
    gr.on([c.change for c in filters], run, inputs, outputs, trigger_mode="always_last", **quiet)  # type: ignore[attr-defined]

    picked = ("backend", "model", "provider", "task", "load_in_4bit")
    targets = {name: controls[name] for name in picked if name in controls}

    def pick(results: dict[str, hub.ModelResult], evt: gr.EventData) -> dict[Component, Any]:
        chosen = results.get(str(getattr(evt, "id", "")))
        if chosen is None:
            return {c: gr.skip() for c in targets.values()}
        how = getattr(evt, "how", "") or None
        values = chosen.choice(how)
        return {c: values.get(name, gr.skip()) for name, c in targets.items()}

    listing.select(pick, [found], list(targets.values()), queue=False, **quiet)  # type: ignore[attr-defined]
    _search_api(local, roots)


def _search_api(local: bool, roots: Sequence[str]) -> None:
    """`/search_models`: the picker's search for scripts, the filters by name; a list of objects
    with `id`, `providers` (live), `parameters`, `fits_locally`, `capabilities` and more."""

    def search_models(
        query: str | None = None,
        task: str = "any",
        served: bool = False,
        provider: str | None = None,
        min_params_b: float | None = None,
        max_params_b: float | None = None,
        fits: bool = False,
        sort: str = "trending",
        hf_token: str | None = None,
        oauth_token: gr.OAuthToken | None = None,
    ) -> list[dict[str, Any]]:
        q = _query(query, task, served, provider, min_params_b, max_params_b, fits, sort, local)
        token = resolve_token(hf_token, oauth_token.token if oauth_token else None)
        result = hub.search(q, token, roots)
        if result.hub_error is not None and not result.results:
            raise gr.Error(str(result.hub_error), title=type(result.hub_error).title)
        return [r.as_dict() for r in result.results]

    gr.Button(visible=False, elem_id="search-models-api").click(
        search_models,
        inputs=[
            gr.Textbox(label="query", visible=False),
            gr.Textbox("any", label="task", visible=False),
            gr.Checkbox(False, label="served", visible=False),
            gr.Textbox("", label="provider", visible=False),
            gr.Number(None, label="min_params_b", visible=False),
            gr.Number(None, label="max_params_b", visible=False),
            gr.Checkbox(False, label="fits", visible=False),
            gr.Textbox("trending", label="sort", visible=False),
            gr.Textbox(None, label="hf_token", visible=False, type="password"),
        ],
        outputs=gr.JSON(label="models", visible=False),
        api_name="search_models",
        api_description="Search the Hub (and this machine): [{id, providers, parameters, fits_locally, capabilities}].",
        show_progress="hidden",
    )
