"""hfchat for programs, gradio-free: the inputs of the `/chat` and `/ask` endpoints
(`hfchat.api.inputs`) and the OpenAI-compatible gateway (`hfchat.api.openai`), which serve
the same `ChatService` as the chat window."""
