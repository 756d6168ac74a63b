"""wippy_agents.llm"""
