"""hfchat: a Gradio chat front end for Hugging Face models through LangChain's ChatHuggingFace."""

__version__ = "0.1.0"
