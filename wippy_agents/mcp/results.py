"""An MCP ``CallToolResult`` as the data a tool call returns to the model (and the journal)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ToolError

__all__ = ["tool_result"]

_MAX_BLOB = 2048  # base64 characters of an image/audio block kept in the result


def tool_result(tool_id: str, result: Any) -> Any:
    """``structuredContent`` when the server gives it, else the text (one block) or the list of blocks.

    Raises ``ToolError`` with the server's text for an ``isError`` result, so
    the model reads what went wrong and can fix its call.
    """
    blocks = [_block(b) for b in (result.content or [])]
    if result.is_error:
        text = "; ".join(b if isinstance(b, str) else json.dumps(b) for b in blocks) or "no detail given"
        raise ToolError(f"tool {tool_id!r} failed: {text}", tool=tool_id)
    if result.structured_content is not None:
        return json.loads(json.dumps(result.structured_content, default=str))
    if len(blocks) == 1 and isinstance(blocks[0], str):
        return blocks[0]
    return blocks


def _block(block: Any) -> Any:
    kind = getattr(block, "type", None)
    if kind == "text":
        return block.text
    data = block.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key in ("data", "blob"):
        value = data.get(key)
        if isinstance(value, str) and len(value) > _MAX_BLOB:
            data[key] = value[:_MAX_BLOB] + f"... ({len(value)} characters)"
    if isinstance(data.get("resource"), dict):
        inner = data["resource"]
        blob = inner.get("blob")
        if isinstance(blob, str) and len(blob) > _MAX_BLOB:
            inner["blob"] = blob[:_MAX_BLOB] + f"... ({len(blob)} characters)"
    return data
