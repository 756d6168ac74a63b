-- Sandbox bootstrap: runs once per Lua state in the unrestricted global
-- environment, captures every privileged function it needs as a local
-- (unreachable from user code: there is no debug library to read upvalues),
-- builds the whitelisted environment, then strips the dangerous globals.
-- Returns the control table the Python side drives the state with.
--
-- Kept small on purpose (every state loads it, and a Lua process is a state):
-- rarely used trusted code (the pattern guard, the module wrappers) is
-- loaded into a state only when its code first needs it, as bytecode that
-- `fetch(key)` (sandbox.py: our own chunks, compiled once per Python
-- process) returns.  `fetch`, `monotonic` (the hook's clock) and `written_at`
-- (log stamps) are the only Python functions in the state: upvalues of this
-- chunk, never reachable from user code.
local monotonic, fetch, hook_every, max_pattern_steps, max_load_bytes, max_move, force_scan,
  seed1, seed2, written_at = ...

local debug_sethook, debug_traceback = debug.sethook, debug.traceback
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_status, co_running, co_isyieldable, co_close = coroutine.status, coroutine.running,
  coroutine.isyieldable, coroutine.close
local raw_pcall, raw_xpcall, raw_error, raw_load = pcall, xpcall, error, load
local raw_setmetatable, raw_getmetatable, raw_rawget, raw_rawset = setmetatable, getmetatable, rawget, rawset
local raw_type, raw_tostring, raw_select, raw_next, raw_pairs = type, tostring, select, next, pairs
local pack, unpack, tconcat = table.pack, table.unpack, table.concat
local raw_find, raw_match, raw_gmatch, raw_gsub = string.find, string.match, string.gmatch, string.gsub
local raw_sub, raw_byte, raw_format, raw_rep = string.sub, string.byte, string.format, string.rep
local raw_move, raw_tonumber = table.move, tonumber
local m_log, m_huge, m_floor = math.log, math.huge, math.floor

local REQ = {}                       -- marks a host request yielded to the driver
local used, budget, deadline = 0, m_huge, m_huge
local exceeded, limit_msg = nil, nil
local logbuf, logdrop = {}, 0
local hook
local CLOCK_EVERY, clock_ticks = 8, 0

local function trip(kind, msg)
  exceeded, limit_msg = kind, msg
  -- From now on fire on every instruction: a pcall that swallows this error
  -- gets the same error again on its very next instruction.
  debug_sethook(hook, "", 1)
  raw_error(msg, 0)
end

hook = function()
  -- the main thread runs only this trusted driver code (user code always runs in a
  -- hooked coroutine): draining logs after a limit tripped must not raise
  local _, main = co_running()
  if main then return end
  if exceeded then
    debug_sethook(hook, "", 1)
    raw_error(limit_msg, 0)
  end
  used = used + hook_every
  if used > budget then
    trip("instructions", raw_format("instruction limit exceeded (%d instructions)", budget))
  end
  -- the clock is a Python call (it takes the GIL): ask it every CLOCK_EVERY-th hook
  -- only, so that Lua threads computing in parallel do not fight over the GIL
  clock_ticks = clock_ticks + 1
  if clock_ticks >= CLOCK_EVERY then
    clock_ticks = 0
    if monotonic() > deadline then trip("timeout", "wall-clock limit exceeded") end
  end
end

local function check_limits()
  if exceeded then raw_error(limit_msg, 0) end
end

-- A coroutine killed by the hook keeps hooks disabled: closing it would run
-- its __close handlers unhooked, so after a limit trip it is never closed.
local function close_(co)
  check_limits()
  return co_close(co)
end

local function check_clock()
  if exceeded then raw_error(limit_msg, 0) end
  if monotonic() > deadline then trip("timeout", "wall-clock limit exceeded") end
end

local function note_memory(ok, err)
  -- A memory error caught by pcall must not let the code carry on at the limit.
  if not ok and err == "not enough memory" and not exceeded then trip("memory", "memory limit exceeded") end
end

-- coroutines: every thread user code creates gets the count hook (5.4 does
-- not carry hooks over), and host requests pass through user coroutines to
-- the driver.
local function new_thread(f)
  if raw_type(f) ~= "function" then
    raw_error("bad argument #1 to 'create' (function expected, got " .. (f == nil and "no value" or raw_type(f)) .. ")", 3)
  end
  local co = co_create(f)
  debug_sethook(co, hook, "", exceeded and 1 or hook_every)
  return co
end

local function resume(co, ...)
  if raw_type(co) ~= "thread" then
    raw_error("bad argument #1 to 'resume' (coroutine expected, got " .. (co == nil and "no value" or raw_type(co)) .. ")", 2)
  end
  local r = pack(co_resume(co, ...))
  while r[1] and r[2] == REQ and co_status(co) == "suspended" do
    r = pack(co_resume(co, co_yield(REQ, r[3], r[4])))
  end
  check_limits()
  note_memory(r[1], r[2])
  return unpack(r, 1, r.n)
end

local function wrap(f)
  local co = new_thread(f)
  return function(...)
    local r = pack(resume(co, ...))
    if r[1] then return unpack(r, 2, r.n) end
    close_(co)
    raw_error(r[2], 0)
  end
end

local function yield(...)
  return co_yield(...)
end

local function pcall_(f, ...)
  local r = pack(raw_pcall(f, ...))
  check_limits()
  note_memory(r[1], r[2])
  return unpack(r, 1, r.n)
end

local function xpcall_(f, handler, ...)
  -- An error raised by the hook reaches the message handler while hooks are
  -- still disabled (we are inside the hook): never run user code then.
  local r = pack(raw_xpcall(f, function(e)
    if exceeded then return e end
    return handler(e)
  end, ...))
  check_limits()
  note_memory(r[1], r[2])
  return unpack(r, 1, r.n)
end

-- host requests: a plain Lua wrapper yields to the driver, which awaits the
-- Python handler and resumes with (value, err).
local function host(op, ...)
  if not co_isyieldable() then
    raw_error(op .. " cannot be called here: it waits on the host, which is impossible inside a "
      .. "C callback (table.sort comparator, string.gsub function, metamethod called from C)", 2)
  end
  return co_yield(REQ, op, pack(...))
end

-- Wrappers check arguments themselves so errors point at the user's line
-- (the bootstrap is stripped bytecode: errors raised inside it have no position).
local function arg_error(fname, i, expected, v, level)
  raw_error(raw_format("bad argument #%d to '%s' (%s expected, got %s)", i, fname, expected,
    v == nil and "no value" or raw_type(v)), level or 3)
end
local function check_str(fname, i, v)
  local t = raw_type(v)
  if t ~= "string" and t ~= "number" then arg_error(fname, i, "string", v, 4) end
end

-- The library templates are the original tables, edited in place: they are
-- never handed to user code (each call gets copies, see new_env), only to our
-- trusted module code.
local S = string
S.dump = nil

-- fetch_chunk(key, name, env): one of our own chunks, loaded from its bytecode
local function fetch_chunk(key, name, env)
  local code = fetch(key)
  if code == nil then raw_error(name .. " is not registered with this Python process", 0) end
  local chunk, err = raw_load(code, "=" .. name, "b", env)
  if not chunk then raw_error(err, 0) end
  return chunk
end

-- The pattern matchers go through the complexity guard (patterns.lua),
-- loaded on first use; the tail calls keep error levels pointing at the caller.
local guard
local function patterns()
  if guard == nil then
    guard = fetch_chunk("=patterns", "patterns")(raw_find, raw_match, raw_gmatch, raw_gsub, raw_sub, raw_byte,
      raw_format, raw_tostring, raw_type, raw_error, pack, unpack, tconcat, m_log, m_huge, check_clock,
      max_pattern_steps, force_scan)
  end
  return guard
end

function S.find(s, p, init, plain)
  check_str("find", 1, s); check_str("find", 2, p)
  if plain then return raw_find(s, p, init, plain) end
  return patterns().find(s, p, init)
end
function S.match(s, p, init)
  check_str("match", 1, s); check_str("match", 2, p)
  return patterns().match(s, p, init)
end
function S.gmatch(s, p, init)
  check_str("gmatch", 1, s); check_str("gmatch", 2, p)
  return patterns().gmatch(s, p, init)
end
function S.gsub(s, p, repl, n)
  check_str("gsub", 1, s); check_str("gsub", 2, p)
  return patterns().gsub(s, p, repl, n)
end

-- string.rep("", 2^62) allocates nothing and then runs 2^62 empty copies in C
function S.rep(s, n, sep)
  local r = raw_rep(s, 0, sep)            -- lets the C function check the argument types
  local k = raw_tonumber(n)
  if k and k > 1 and #raw_tostring(s) + (sep and #raw_tostring(sep) or 0) == 0 then
    return r
  end
  return raw_rep(s, n, sep)
end

local T = table
function T.move(a1, f, e, t, a2)
  if raw_type(f) == "number" and raw_type(e) == "number" and e - f >= max_move then
    raw_error("table.move: range of " .. raw_format("%.0f", e - f + 1) .. " elements is over the sandbox limit", 2)
  end
  return raw_move(a1, f, e, t, a2)
end

local M, U = math, utf8
local O = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}
local C = {create = new_thread, resume = resume, wrap = wrap, yield = yield, status = co_status,
  running = co_running, isyieldable = co_isyieldable, close = close_}

local function forbidding(what, names)  -- a metatable naming what the sandbox left out
  local set = {}
  for _, k in ipairs(names) do set[k] = true end
  return {__metatable = false, __index = function(_, k)
    if set[k] then raw_error(what .. k .. " is not available in the Lua sandbox", 2) end
  end}
end
local STRING_MT = forbidding("string.", {"dump"})
local OS_MT = forbidding("os.", {"execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale"})
raw_setmetatable(S, STRING_MT)

-- the string metatable is hidden; its __index is the call's string table
-- (the template until the call's code first names `string`: same contents)
local smt = raw_getmetatable("")
smt.__metatable = false
smt.__index = S

local function setmetatable_(t, mt)
  if raw_type(t) ~= "table" then arg_error("setmetatable", 1, "table", t) end
  if mt ~= nil and raw_type(mt) ~= "table" then arg_error("setmetatable", 2, "nil or table", mt) end
  if raw_type(mt) == "table" and raw_rawget(mt, "__gc") ~= nil then
    -- finalizers run with hooks off (and at lua_close): an endless __gc would hang the node
    raw_error("setmetatable: __gc metamethods are not allowed in the Lua sandbox", 2)
  end
  return raw_setmetatable(t, mt)
end

local function emit(level, msg, fields)
  if #logbuf >= 1000 then logdrop = logdrop + 1; return end
  logbuf[#logbuf + 1] = {level, raw_tostring(msg), fields, written_at()}
end

local function print_(...)
  local parts = {}
  for i = 1, raw_select("#", ...) do parts[i] = raw_tostring((raw_select(i, ...))) end
  emit("info", tconcat(parts, "\t"))
end

local forbidden = {io = true, debug = true, package = true, python = true, dofile = true, loadfile = true,
  collectgarbage = true, loadstring = true, module = true, jit = true, ffi = true}
local BASE = {
  assert = assert, error = raw_error, ipairs = ipairs, next = raw_next, pairs = raw_pairs,
  pcall = pcall_, xpcall = xpcall_, rawequal = rawequal, rawget = raw_rawget, rawlen = rawlen,
  rawset = raw_rawset, select = raw_select, setmetatable = setmetatable_, getmetatable = raw_getmetatable,
  tonumber = tonumber, tostring = raw_tostring, type = raw_type, print = print_, _VERSION = _VERSION,
}

local function copy(t)
  local c = {}
  for k, v in raw_next, t do c[k] = v end
  return c
end

-- Library tables: each call gets its own copies of the templates (S, T, M, U,
-- O, C are never handed out), made when its code first names one, and shared
-- by the call's environments; a reused state gives the next call new ones.
local LIBS = {string = S, table = T, math = M, utf8 = U, os = O, coroutine = C}
local LIB_MT = {string = STRING_MT, os = OS_MT}
local libs = {}
local function lib(name)
  local t = libs[name]
  if t == nil then
    t = copy(LIBS[name])
    local mt = LIB_MT[name]
    if mt then raw_setmetatable(t, mt) end
    if name == "string" then smt.__index = t end
    libs[name] = t
  end
  return t
end

-- Trusted wrapper code (our modules) sees host(), emit() and use(name): the
-- state's instance of another trusted module (nil if not listed for this
-- state), so e.g. time.after can hand out a channel of the channel module.
-- All modules of a state share one environment of the private templates
-- (nothing a call does to its own string/table/... copies reaches a module);
-- a module's bytecode is fetched and loaded the first time code uses it.
local trusted = {}          -- name -> loader of the module instance for this call
local trusted_chunks = nil  -- key -> loaded chunk, once the state is reused (see fresh_libs)
local function use(name)
  local l = trusted[name]
  if l then return l() end
  return nil
end
local TRUSTED = copy(BASE)
-- part(name): a rarely needed piece of a module (registered with
-- sandbox.trusted_part), as a function to run; modules call it on first need.
local function part(name)
  local key = "=" .. name
  local chunk = trusted_chunks and trusted_chunks[key]
  if chunk == nil then
    chunk = fetch_chunk(key, name, TRUSTED)
    if trusted_chunks then trusted_chunks[key] = chunk end
  end
  return chunk
end
TRUSTED.string, TRUSTED.table, TRUSTED.math, TRUSTED.utf8, TRUSTED.os, TRUSTED.coroutine = S, T, M, U, O, C
TRUSTED.host, TRUSTED.emit, TRUSTED.use, TRUSTED.part = host, emit, use, part
raw_setmetatable(TRUSTED, {__metatable = false, __newindex = function(_, k)
  raw_error("trusted module code must not set globals (" .. raw_tostring(k) .. ")", 2)
end})

local function module_loader(name, key)
  local l = trusted[name]
  if l then return l end
  local done, value = false, nil
  l = function()
    if not done then
      local chunk = trusted_chunks and trusted_chunks[key]
      if chunk == nil then
        chunk = fetch_chunk(key, "module " .. name, TRUSTED)
        if trusted_chunks then trusted_chunks[key] = chunk end
      end
      value = chunk(); done = true
    end
    return value
  end
  trusted[name] = l
  return l
end

local raw_randomseed = math.randomseed
local function fresh_libs(s1, s2)
  libs, trusted = {}, {}
  -- A state that serves a second call is likely to serve more: from now on it
  -- keeps each module chunk loaded.  A state used once (a process) does not:
  -- the chunk's main prototype would stay alive for nothing (~2-4 KB a module).
  if trusted_chunks == nil then trusted_chunks = {} end
  smt.__index = S
  if s1 then raw_randomseed(s1, s2) else raw_randomseed() end
end
-- randomseed() alone seeds from time(NULL) (seconds) and the state address
if seed1 then raw_randomseed(seed1, seed2) else raw_randomseed() end

local function lazy(f)
  local done, value = false, nil
  return function()
    if not done then value = f(); done = true end
    return value
  end
end

-- new_env(owner, imports, known, name1, key1, ...): the listed modules by name
-- and key (registered with fetch) are globals and requirable; imports map
-- aliases to zero-argument loaders (requirable only); known is " name name ":
-- every module name there is, so that an unlisted one gives a clear error.
local NONE = {}
local function new_env(owner, imports, known, ...)
  imports = imports or NONE
  local modules = {}
  for i = 1, raw_select("#", ...), 2 do
    local name, key = raw_select(i, ...)
    modules[name] = key
    module_loader(name, key)
  end
  local function is_known(name)
    return raw_type(name) == "string" and raw_type(known) == "string"
      and raw_find(known, " " .. name .. " ", 1, true) ~= nil
  end
  local env = {}
  for k, v in raw_next, BASE do env[k] = v end
  env._G = env
  local function load_(chunk, name, mode, ...)
    if raw_type(chunk) ~= "string" then
      return nil, "load: only source text is accepted in the Lua sandbox"
    end
    if mode ~= nil and mode ~= "t" then
      return nil, "load: mode " .. raw_tostring(mode) .. " is not allowed (only \"t\", no bytecode)"
    end
    if #chunk > max_load_bytes then return nil, "load: chunk larger than " .. max_load_bytes .. " bytes" end
    local e = env
    if raw_select("#", ...) > 0 then e = ... end
    return raw_load(chunk, name or "=(load)", "t", e)
  end
  env.load = load_
  local function unlisted(name)
    return raw_format("module %q is not enabled for %s: list it under modules:", name, owner)
  end
  env.require = function(name)
    if raw_type(name) ~= "string" then raw_error("require: module name must be a string", 2) end
    if raw_rawget(modules, name) then return trusted[name]() end
    local l = raw_rawget(imports, name)
    if l then return l() end
    if is_known(name) then raw_error(unlisted(name), 2) end
    raw_error(raw_format("module %q not found: not a module listed for %s nor one of its imports: aliases",
      name, owner), 2)
  end
  raw_setmetatable(env, {__metatable = false, __index = function(t, k)
    if LIBS[k] then local v = lib(k); raw_rawset(t, k, v); return v end
    if forbidden[k] then raw_error(raw_tostring(k) .. " is not available in the Lua sandbox", 2) end
    if raw_rawget(modules, k) then local v = trusted[k](); raw_rawset(t, k, v); return v end
    if is_known(k) then raw_error(unlisted(k), 2) end
    return nil
  end})
  return env
end

-- driver side ---------------------------------------------------------------

local function errstr(e)
  local t = raw_type(e)
  if t == "string" then return e end
  if t == "number" or t == "boolean" or t == "nil" then return raw_tostring(e) end
  if t == "table" then
    local m = raw_rawget(e, "message") or raw_rawget(e, "error")
    if raw_type(m) == "string" then return m end
  end
  return "(a " .. t .. " error value)"
end

local NOT_OURS = "coroutine.yield called outside a coroutine created by coroutine.create/wrap"

-- resume_box(box, ...) -> the packed results of resuming box[1], or nil, message
-- (noting a memory error as the exceeded limit)
local function resume_box(box, ...)
  local r = pack(co_resume(box[1], ...))
  if not r[1] then
    if r[2] == "not enough memory" and not exceeded then exceeded, limit_msg = "memory", "memory limit exceeded" end
    return nil, errstr(r[2])
  end
  return r
end

-- step(co, ...) -> "done", results | "request", op, args | "error", message
local function step(box, ...)
  local r, err = resume_box(box, ...)
  if not r then return "error", err end
  if co_status(box[1]) == "dead" then return "done", r end
  if r[2] == REQ then return "request", r[3], r[4] end
  return "error", NOT_OURS
end

-- step_slice(box, instructions, deadline, ...): step for the process driver, with
-- results and request arguments inline ("done", ...results | "request", op, ...args)
-- so it reads them in one crossing; it starts a new slice in the same crossing when
-- instructions is given, and the tag says whether log records wait ("request+log"),
-- so that it only drains them when there are some (each call into Lua costs ~2 us).
local function step_slice(box, instructions, dl, ...)
  if instructions then used, budget, deadline = 0, instructions, dl end
  local r, err = resume_box(box, ...)
  if not r then return "error", err end
  if co_status(box[1]) == "dead" then return "done", unpack(r, 2, r.n) end
  if r[2] == REQ then
    local a = r[4]
    return (logbuf[1] == nil and logdrop == 0) and "request" or "request+log", r[3], unpack(a, 1, a.n)
  end
  return "error", NOT_OURS
end

-- run_entry: runs a chunk, finds the method, calls it with the arguments
local function run_entry(chunk, method, owner, ...)
  local ret = chunk()
  local f
  if method == nil or method == "" then
    f = ret
  else
    if raw_type(ret) == "table" then f = raw_rawget(ret, method) end
    if f == nil then f = raw_rawget(owner, method) end
  end
  if raw_type(f) ~= "function" and method == nil then
    raw_error("the chunk must return a function when the entry names no method", 0)
  elseif raw_type(f) ~= "function" then
    raw_error("method " .. raw_format("%q", raw_tostring(method)) .. " not found: the chunk must return a table "
      .. "holding it (or define it as a global)", 0)
  end
  return f(...)
end

-- Compiled-code cache of a pooled state: the source is compiled once as
-- `function(_ENV, ...) <source> end` (same lines, same meaning for any text
-- that compiles on its own, which is checked first) and each call binds its
-- own fresh environment.  The factory's outer chunk sees an empty table.
local factories, nfactories = {}, 0
local function load_user(src, name, env, cache)
  if cache then
    local key = name .. "\0" .. src
    local factory = factories[key]
    if factory then return function(...) return factory(env, ...) end, nil end
    local f, e = raw_load(src, name, "t", env)
    if not f then return nil, e end
    local w = raw_load("return function(_ENV, ...) " .. src .. "\nend", name, "t", {})
    if not w then return f, nil end       -- e.g. a "#!" first line: just do not cache
    if nfactories >= 64 then factories, nfactories = {}, 0 end
    factory = w()
    factories[key], nfactories = factory, nfactories + 1
    return f, nil
  end
  local f, e = raw_load(src, name, "t", env)
  return f, e
end

local ctl = {
  new_env = new_env, step = step, step_slice = step_slice,
  -- threads stay boxed in a table: lupa does not hand a Lua thread back intact
  new_thread = function(f) return {new_thread(f)} end,
  run_entry = run_entry, emit = emit, lazy = lazy, fresh_libs = fresh_libs,
  seed = function(a, b) raw_randomseed(a, b) end,
  library = function(chunk) return lazy(chunk) end,
  load = load_user,
  start = function(instructions, dl)
    used, budget, deadline = 0, instructions, dl
  end,
  exceeded = function() return exceeded, limit_msg end,
  drain_logs = function()
    if logbuf[1] == nil and logdrop == 0 then return nil, 0 end  -- the usual case: no new table
    local b, d = logbuf, logdrop
    logbuf, logdrop = {}, 0
    return b, d
  end,
}

-- strip the real globals (defence in depth: they are unreachable anyway; the
-- library tables left are our templates), and drop the libraries nothing
-- uses from the registry so that they are collected (~4 KB a state)
local registry = debug.getregistry()
local loaded = registry._LOADED
for k in raw_next, loaded do loaded[k] = nil end
for _, k in ipairs({"_IO_input", "_IO_output", "_PRELOAD", "_CLIBS", "FILE*"}) do registry[k] = nil end
for _, k in ipairs({"python", "debug", "io", "package", "require", "dofile", "loadfile", "load",
  "collectgarbage", "os", "string", "table", "math", "utf8", "coroutine"}) do
  _G[k] = nil
end
debug_sethook(hook, "", hook_every)
return ctl
