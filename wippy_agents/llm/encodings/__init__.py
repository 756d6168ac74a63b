"""Shipped tiktoken encoding files (o200k_base, cl100k_base); see ``wippy_agents.llm.tokens``."""
