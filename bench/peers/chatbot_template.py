"""The Hugging Face "Chatbot" Space template (Gradio SDK, `gr.ChatInterface` +
`huggingface_hub.InferenceClient` streaming `chat_completion`, API `/respond`): what a user
would pick instead of hfchat. `bench/` measures hfchat against it.

It is the template's app.py with only these changes, so the benchmarks can run it offline:
- the client talks to `--base-url` (a local OpenAI-compatible server: `transformers serve`,
  llama.cpp) instead of `model="openai/gpt-oss-20b"` on Inference Providers, and sends the
  served model's name (`--model`) as the benchmarks' direct client does;
- no sign-in: the template's sidebar holds only `gr.LoginButton()`, which off a Space Gradio
  mocks with the machine's Hugging Face login and refuses to start without one (an offline
  benchmark has none), so the sidebar is left out and the token is optional
  (`gr.OAuthToken | None`); a local server needs none;
- the temperature slider starts at 0 instead of 0.1 (Gradio refuses values under a slider's
  minimum), so that the benchmarks can ask it for greedy decoding, temperature 0, as they
  ask hfchat and the direct client: the same request on the wire from all three;
- `--concurrency-limit` is passed to `gr.ChatInterface` (the template ships Gradio's default,
  1; the concurrency benchmark also runs it with 32);
- `--port` and the loopback host for `launch()`.

Run: ``python bench/peers/chatbot_template.py --base-url http://127.0.0.1:8000 --port 7861``
"""

import argparse

import gradio as gr
from huggingface_hub import InferenceClient

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--base-url", required=True, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000")
parser.add_argument("--model", default=None, help="the model name the server expects (default: none sent)")
parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT, else 7860")
parser.add_argument(
    "--concurrency-limit", type=int, default=None, help="gr.ChatInterface's concurrency_limit (default: as shipped, 1)"
)
ARGS = parser.parse_args()


def respond(
    message,
    history: list[dict[str, str]],
    system_message,
    max_tokens,
    temperature,
    top_p,
    hf_token: gr.OAuthToken | None,
):
    """
    For more information on `huggingface_hub` Inference API support, please check the docs: https://huggingface.co/docs/huggingface_hub/v0.22.2/en/guides/inference
    """
    client = InferenceClient(token=hf_token.token if hf_token else None, base_url=ARGS.base_url)

    messages = [{"role": "system", "content": system_message}]

    messages.extend(history)

    messages.append({"role": "user", "content": message})

    response = ""

    for message in client.chat_completion(
        messages,
        model=ARGS.model,
        max_tokens=max_tokens,
        stream=True,
        temperature=temperature,
        top_p=top_p,
    ):
        choices = message.choices
        token = ""
        if len(choices) and choices[0].delta.content:
            token = choices[0].delta.content

        response += token
        yield response


"""
For information on how to customize the ChatInterface, peruse the gradio docs: https://www.gradio.app/docs/chatinterface
"""
chatbot = gr.ChatInterface(
    respond,
    additional_inputs=[
        gr.Textbox(value="You are a friendly Chatbot.", label="System message"),
        gr.Slider(minimum=1, maximum=2048, value=512, step=1, label="Max new tokens"),
        gr.Slider(minimum=0.0, maximum=4.0, value=0.7, step=0.1, label="Temperature"),
        gr.Slider(
            minimum=0.1,
            maximum=1.0,
            value=0.95,
            step=0.05,
            label="Top-p (nucleus sampling)",
        ),
    ],
    concurrency_limit="default" if ARGS.concurrency_limit is None else ARGS.concurrency_limit,
)

with gr.Blocks() as demo:
    chatbot.render()


if __name__ == "__main__":
    demo.launch(server_name="127.0.0.1", server_port=ARGS.port)
