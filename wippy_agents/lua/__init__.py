"""wippy_agents.lua"""
