"""wippy_agents.store"""
