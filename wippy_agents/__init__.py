"""wippy-agents: LLM agents as supervised, durable, self-extending actors.

The layers, top to bottom (each imports only from those above it):
runtime -> store -> registry -> security -> lua -> tasks -> llm -> agents -> console.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
