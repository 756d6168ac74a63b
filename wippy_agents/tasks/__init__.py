"""wippy_agents.tasks"""
