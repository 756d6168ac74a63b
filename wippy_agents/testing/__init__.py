"""wippy_agents.testing"""
