"""Tools the model may call: the built-in ones (`builtin`), MCP servers' (`mcp`), how a local
model's text becomes tool calls (`parsing`), and the loop that runs them (`loop`).

Gradio-free. `types` is the leaf every part shares: a tool's spec, the `Tool` protocol, a call
as the model made it, and `ToolError`, the one error a tool raises for the model to read.
"""
