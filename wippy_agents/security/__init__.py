"""wippy_agents.security"""
