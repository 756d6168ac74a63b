"""The terminal side of wippy: every rich rendering lives here, and nothing else.

Conversations are the agents layer's (``wippy_agents.agents.session``,
``app.sessions``); the console only renders them. The CLI handlers
(``repl``, ``tasks_cmd``, ...) are imported by ``wippy_agents.cli`` on demand.
"""

__all__: list[str] = []
