"""wippy_agents.agents"""
