"""The Lua modules ``llm`` and ``agent``, plus durable ``funcs.call`` inside agent tasks.

In a Lua agent's run (``kind: agent`` with ``source``) every model call, tool
call and child agent is a journaled step of the agent's task, so a resumed
Lua agent replays them instead of calling again. Elsewhere (a plain function
call) they simply run.

```lua
local r, err = llm.generate("Summarise: ...", {model = "app.models:default", system = "Be brief"})
-- r = {text = "...", tool_calls = {{id, name, arguments}}, usage = {...}, stop_reason = "stop"}
local next_chunk, reply = llm.stream("Tell a story", {model = "app.models:default"})
for chunk in next_chunk do ... end
local data, err = llm.structured("Extract the city", {type = "object", properties = {city = {type = "string"}},
                                 required = {"city"}}, {model = "app.models:default"})
local res, err = agent.run("app.agents:coder", "write a slugify tool")   -- {answer, stop_reason, ...}
```
Secrets never cross: Lua names a model entry; the key stays in the provider.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import jsonschema

from ..errors import Abort, LeaseLost, NondeterminismError, ProviderError, TaskCancelled, TaskStranded, UsageError
from ..llm import Message, ModelReply, TextDelta, TokenCounter, Done, ToolSpec
from ..lua import LuaModule, LuaOp
from ..tasks import Metered
from .limits import LimitReached, RunLimits
from .result import model_call_failed
from .spec import AgentSpec

if TYPE_CHECKING:
    from .service import AgentService

__all__ = ["llm_module", "agent_module", "journal_funcs", "Abort"]

_CONTROL = (TaskCancelled, LeaseLost, NondeterminismError, TaskStranded)


LLM_LUA = """
local M = {}
function M.generate(prompt, opts) return host("llm.generate", prompt, opts) end
function M.structured(prompt, schema, opts) return host("llm.structured", prompt, schema, opts) end
function M.stream(prompt, opts)
  local r, err = host("llm.stream", prompt, opts)
  if not r then return nil, err end
  local i = 0
  return function() i = i + 1; return r.chunks[i] end, r.reply
end
return M
"""

AGENT_LUA = """
local M = {}
function M.run(id, prompt, opts)
  if type(id) ~= "string" then return nil, "agent.run: expected an agent id string, got " .. type(id) end
  return host("agent.run", id, prompt, opts)
end
return M
"""


async def _durable(ctx: Any, name: str, fn: Any, *, idempotent: bool = True) -> Any:
    """Run ``fn`` as a step of the Lua agent's task when there is one, else just run it."""
    task = (ctx.extra or {}).get("task")
    if task is None:
        value = await fn()
        return value.value if isinstance(value, Metered) else value
    try:
        return await task.step(name, fn, idempotent=idempotent)
    except _CONTROL as exc:
        raise Abort(exc) from None


def _messages(prompt: Any, opts: dict[str, Any]) -> list[Message]:
    out = [Message.system(opts["system"])] if isinstance(opts.get("system"), str) else []
    if isinstance(prompt, str):
        return out + [Message.user(prompt)]
    if isinstance(prompt, list):
        try:
            return out + [Message.from_dict(m) for m in prompt]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"llm: messages must be {{role=..., content=...}} tables: {exc}") from None
    raise UsageError(f"llm: expected a prompt string or a list of messages, got {type(prompt).__name__}")


def llm_module(service: "AgentService") -> LuaModule:
    """``llm.generate``, ``llm.stream``, ``llm.structured`` for Lua code that lists ``llm`` in ``modules:``."""

    def model_for(ctx: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
        spec: AgentSpec | None = (ctx.extra or {}).get("agent_spec")
        ref = opts.get("model") or (spec.model if spec else None)
        if not isinstance(ref, str) or not ref:
            raise UsageError("llm: say which model to use: {model = \"app.models:default\"}")
        model_spec = AgentSpec(id=ctx.entry_id, model=ctx.resolve(ref), prompt=None, inline_prompt=None,
                               temperature=opts.get("temperature"), max_output_tokens=opts.get("max_tokens"))
        return service.model(model_spec)

    def tools_for(opts: dict[str, Any]) -> list[ToolSpec]:
        out = []
        for item in opts.get("tools") or ():
            if isinstance(item, str):
                entry = service.app.registry.get(item)
                if entry is None:
                    raise UsageError(f"llm: tool {item!r} does not exist")
                from ..registry.kinds import tool_visible_name

                out.append(ToolSpec(name=tool_visible_name(entry), description=str(entry.meta.get("description") or ""),
                                    input_schema=dict(entry.data.get("input_schema") or {"type": "object"})))
            elif isinstance(item, dict):
                out.append(ToolSpec.from_dict(item))
        return out

    async def call(ctx: Any, prompt: Any, opts: Any, *, stream: bool) -> dict[str, Any]:
        opts = opts if isinstance(opts, dict) else {}
        messages, tools = _messages(prompt, opts), tools_for(opts)
        extra = ctx.extra if ctx.extra is not None else {}
        limits: RunLimits | None = extra.get("limits")  # set for a Lua agent's run: SPEC §6 limits apply
        task = extra.get("task")
        if limits is not None:
            cfg, _ = model_for(ctx, opts)
            counter = TokenCounter(cfg.model)
            prompt_tokens = sum(counter.message(m) for m in messages) + (counter.tools(tools) if tools else 0)
            refused = limits.before_call(prompt_tokens=prompt_tokens, max_output_tokens=cfg.max_output_tokens,
                                         cfg=cfg)
            if refused:
                raise Abort(limit=refused)

        async def run() -> Metered:
            cfg, provider = model_for(ctx, opts)
            listened = task is not None and service.listened(task.task.id)
            chunks: list[str] = []
            reply: ModelReply | None = None
            try:
                async for event in provider.stream(messages, tools=tools, model_cfg=cfg):
                    if isinstance(event, TextDelta):
                        chunks.append(event.text)
                        if listened:
                            service.emit(task.task.id, {"type": "text", "text": event.text})
                    elif isinstance(event, Done):
                        reply = event.reply
            except ProviderError as exc:
                if task is None:
                    raise  # a plain function call: Lua gets nil, err
                # In a Lua agent's task the failed call is not journaled (Abort passes the step's write):
                # the run ends with the error and a resume makes the call again, as in the turn loop.
                raise Abort(model_call_failed(exc, task.task.id)) from None
            assert reply is not None
            data = reply.to_dict()
            if listened:
                service.emit(task.task.id, {"type": "reply", "reply": data})
            return Metered(value={"reply": data, "chunks": chunks}, tokens=reply.usage.total_tokens,
                           cost_usd=reply.usage.cost_usd)

        out = await _durable(ctx, "llm", run)
        if limits is not None:
            reply = ModelReply.from_dict(out["reply"])
            if reply.text:
                extra["last_text"] = reply.text
            stop = limits.after_call(reply) or (limits.repeated(reply.tool_calls) if reply.tool_calls else None)
            if stop:
                raise Abort(limit=stop)
        return out if stream else out["reply"]

    async def generate(ctx: Any, prompt: Any = None, opts: Any = None) -> Any:
        return await call(ctx, prompt, opts, stream=False)

    async def stream(ctx: Any, prompt: Any = None, opts: Any = None) -> Any:
        return await call(ctx, prompt, opts, stream=True)

    async def structured(ctx: Any, prompt: Any = None, schema: Any = None, opts: Any = None) -> Any:
        if not isinstance(schema, dict):
            raise UsageError("llm.structured(prompt, schema, opts): schema must be a JSON Schema table")
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UsageError(f"llm.structured: the schema is not a valid JSON Schema: {exc.message}") from None
        opts = dict(opts) if isinstance(opts, dict) else {}
        instruction = ("Reply with one JSON value and nothing else (no prose, no code fences) that matches this "
                       f"JSON Schema:\n{json.dumps(schema, sort_keys=True)}")
        opts["system"] = f"{opts['system']}\n\n{instruction}" if isinstance(opts.get("system"), str) else instruction
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt or "")}]
        problem = ""
        for _attempt in range(2):  # one correction round: the model sees what was wrong
            reply = await call(ctx, messages, opts, stream=False)
            text = _strip_fences(reply.get("text") or "")
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                problem = f"the reply is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            else:
                errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
                if not errors:
                    return value
                problem = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                                    for e in errors[:5])
            messages = [*messages, {"role": "assistant", "content": reply.get("text") or ""},
                        {"role": "user", "content": f"That does not match the schema: {problem}. Reply again with "
                                                    "only the corrected JSON."}]
        raise UsageError(f"llm.structured: the model's reply does not match the schema: {problem}")

    def model_call(fn: Any) -> LuaOp:
        return LuaOp(fn=fn, effect="wait", guard="llm.call", journaled=True)

    return LuaModule(name="llm", lua=LLM_LUA, ops={"llm.generate": model_call(generate),
                                                   "llm.stream": model_call(stream),
                                                   "llm.structured": model_call(structured)})


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*", text, flags=re.S)
    return (match.group(1) if match else text).strip()


def agent_module(service: "AgentService") -> LuaModule:
    """``agent.run(id, prompt, opts)``: run an agent as a child task and return its result table."""

    async def run(ctx: Any, agent_id: Any = None, prompt: Any = None, opts: Any = None) -> Any:
        if not isinstance(prompt, str):
            raise UsageError(f"agent.run: the prompt must be a string, got {type(prompt).__name__}")
        target = ctx.resolve(agent_id)
        opts = opts if isinstance(opts, dict) else {}
        extra = ctx.extra if ctx.extra is not None else {}
        task = extra.get("task")
        child_id = None
        if task is not None:
            n = extra.get("children", 0) + 1
            extra["children"] = n
            child_id = f"{task.task.id}/lua{n}"

        async def go() -> dict[str, Any]:
            record = await service.start(target, prompt, task_id=child_id, variables=opts.get("variables"),
                                         parent_id=task.task.id if task is not None else None)
            if task is None:
                return (await service.result(record.id)).to_dict()
            return (await service.child_result(task.task.id, record.id)).to_dict()

        return await _durable(ctx, f"agent:{target}", go)

    return LuaModule(name="agent", lua=AGENT_LUA,
                     ops={"agent.run": LuaOp(fn=run, effect="wait", guard="agent.run", journaled=True)})


def journal_funcs(base: LuaModule, service: "AgentService") -> LuaModule:
    """``base`` (the ``funcs`` module) with ``funcs.call`` a journaled step inside Lua agent tasks
    (idempotent tools may re-run); its declaration (effect, guard) stays as ``base`` declares it."""
    inner = base.ops["funcs.call"].fn

    async def call(ctx: Any, entry_id: str = "", *args: Any) -> Any:
        if (ctx.extra or {}).get("task") is None:
            return await inner(ctx, entry_id, *args)
        target = ctx.resolve(entry_id) if isinstance(entry_id, str) else entry_id
        entry = service.app.registry.get(target) if isinstance(target, str) else None
        idempotent = bool(entry is not None and entry.data.get("idempotent"))
        return await _durable(ctx, f"call:{target}", lambda: inner(ctx, entry_id, *args), idempotent=idempotent)

    return base.replace_ops({"funcs.call": call})
