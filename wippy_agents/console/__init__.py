"""wippy_agents.console"""
