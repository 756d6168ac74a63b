"""wippy_agents.registry"""
