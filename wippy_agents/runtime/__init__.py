"""wippy_agents.runtime"""
