"""The terminal side of wippy: every rich rendering lives here, and the console's Python API.

``Sessions``/``Session`` (``app.extensions["sessions"]``) are the durable
console conversations; the CLI handlers (``repl``, ``tasks_cmd``, ...) are
imported by ``wippy_agents.cli`` on demand.
"""

from .session import SESSION_KIND, Session, SessionState, Sessions, Turn, turn_task_id

__all__ = ["SESSION_KIND", "Session", "SessionState", "Sessions", "Turn", "turn_task_id"]
