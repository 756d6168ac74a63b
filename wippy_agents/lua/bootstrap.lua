-- Sandbox bootstrap: runs once per Lua state in the unrestricted global
-- environment, captures every privileged function it needs as a local
-- (unreachable from user code: there is no debug library to read upvalues),
-- builds the whitelisted environment, then strips the dangerous globals.
-- Returns the control table the Python side drives the state with.
local monotonic, hook_every, max_pattern_steps, max_load_bytes, max_move, force_scan = ...

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

local function trip(kind, msg)
  exceeded, limit_msg = kind, msg
  -- From now on fire on every instruction: a pcall that swallows this error
  -- gets the same error again on its very next instruction.
  debug_sethook(hook, "", 1)
  raw_error(msg, 0)
end

hook = function()
  if exceeded then
    debug_sethook(hook, "", 1)
    raw_error(limit_msg, 0)
  end
  used = used + hook_every
  if used > budget then
    trip("instructions", raw_format("instruction limit exceeded (%d instructions)", budget))
  end
  if monotonic() > deadline then trip("timeout", "wall-clock limit exceeded") end
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

-- pattern complexity guard (see sandbox.py docstring for the reasoning)
local function skip_set(p, i)              -- i at "[": returns the index after the closing "]"
  local n = #p
  i = i + 1
  if raw_byte(p, i) == 94 then i = i + 1 end
  if raw_byte(p, i) == 93 then i = i + 1 end
  while i <= n and raw_byte(p, i) ~= 93 do
    if raw_byte(p, i) == 37 then i = i + 1 end
    i = i + 1
  end
  return i + 1
end

local function pattern_cost(p, anchorable)
  local i, n = 1, #p
  local anchored = false
  if anchorable and raw_byte(p, 1) == 94 then anchored = true; i = 2 end
  local items, quantified, trailing_q, balanced = 0, 0, false, 0
  while i <= n do
    local c = raw_byte(p, i)
    local single = true
    if c == 40 or c == 41 then               -- ( )
      single = false; i = i + 1
    elseif c == 36 and i == n then           -- $ at end: an item a quantifier may backtrack against
      single = false; i = i + 1; trailing_q = false; items = items + 1
    elseif c == 37 then                      -- %
      local d = raw_byte(p, i + 1)
      if d == 98 then                        -- %bxy scans forward
        balanced = balanced + 1; single = false; i = i + 4; items = items + 1; trailing_q = false
      elseif d == 102 then                   -- %f[set]
        single = false
        i = skip_set(p, i + 2)
        items = items + 1; trailing_q = false
      elseif d and d >= 48 and d <= 57 then  -- back reference
        balanced = balanced + 1; single = false; i = i + 2; items = items + 1; trailing_q = false
      else
        i = i + 2
      end
    elseif c == 91 then                      -- [set]
      i = skip_set(p, i)
    else
      i = i + 1
    end
    if single then
      items = items + 1
      trailing_q = false
      local q = raw_byte(p, i)
      if q == 42 or q == 43 or q == 45 then quantified = quantified + 1; trailing_q = true; i = i + 1
      elseif q == 63 then i = i + 1 end
    end
  end
  -- a quantifier followed by nothing never backtracks
  local k = quantified - (trailing_q and 1 or 0) + balanced
  return k, items, anchored
end

local function too_complex(name, s, p)
  return raw_format("%s: pattern %q is too complex for a subject of %d bytes (its worst case "
    .. "cannot be interrupted by the time limit); simplify the pattern, anchor it, split the input "
    .. "or use plain=true", name, #p > 60 and raw_sub(p, 1, 57) .. "..." or p, #s)
end

-- log10 of the worst-case number of matcher steps
local function steps(n, k, items, unanchored)
  local ln = m_log(n + 1, 10)
  return (k + (unanchored and 1 or 0)) * ln + m_log(items + 1, 10)
end
local max_steps_log = m_log(max_pattern_steps, 10)

-- "direct": the C matcher may run as is; "scan": run it anchored from each
-- start position in a Lua loop that checks the clock; raises when not even
-- one anchored attempt is bounded.
local function plan(name, s, p, anchorable)
  if raw_type(p) ~= "string" and raw_type(p) ~= "number" then return "direct" end
  if raw_type(s) ~= "string" and raw_type(s) ~= "number" then return "direct" end
  s, p = raw_tostring(s), raw_tostring(p)
  local k, items, anchored = pattern_cost(p, anchorable)
  if force_scan then return anchored and "direct" or "scan" end  -- tests: prove scan == C matcher
  if steps(#s, k, items, not anchored) <= max_steps_log then return "direct" end
  if not anchored and steps(#s, k, items, false) <= max_steps_log then return "scan" end
  raw_error(too_complex(name, s, p), 3)
end

local function norm_init(s, init)
  local n = #s
  init = init or 1
  if init < 0 then init = n + init + 1; if init < 1 then init = 1 end
  elseif init == 0 then init = 1 end
  return init
end

local function scan_find(s, p, init, want_captures)
  s, p = raw_tostring(s), raw_tostring(p)
  local ap = "^" .. p
  for pos = norm_init(s, init), #s + 1 do
    check_clock()
    local r = pack(raw_find(s, ap, pos))
    if r[1] then
      if want_captures then
        if r.n == 2 then return raw_sub(s, r[1], r[2]) end
        return unpack(r, 3, r.n)
      end
      return unpack(r, 1, r.n)
    end
  end
  return nil
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
local function check_thread(fname, v)
  if raw_type(v) ~= "thread" then arg_error(fname, 1, "coroutine", v, 4) end
end
local function check_fn(fname, v)
  if raw_type(v) ~= "function" then arg_error(fname, 1, "function", v, 4) end
end

local S = {}
for k, v in raw_pairs(string) do S[k] = v end
S.dump = nil

function S.find(s, p, init, plain)
  check_str("find", 1, s); check_str("find", 2, p)
  if plain then return raw_find(s, p, init, plain) end
  if plan("string.find", s, p, true) == "scan" then return scan_find(s, p, init, false) end
  return raw_find(s, p, init)
end

function S.match(s, p, init)
  check_str("match", 1, s); check_str("match", 2, p)
  if plan("string.match", s, p, true) == "scan" then return scan_find(s, p, init, true) end
  return raw_match(s, p, init)
end

function S.gmatch(s, p, init)
  check_str("gmatch", 1, s); check_str("gmatch", 2, p)
  if plan("string.gmatch", s, p, false) == "direct" then return raw_gmatch(s, p, init) end
  s, p = raw_tostring(s), raw_tostring(p)
  local ap, pos, last = "^" .. p, norm_init(s, init), nil
  return function()
    while pos <= #s + 1 do
      check_clock()
      local r = pack(raw_find(s, ap, pos))
      if r[1] and r[2] + 1 ~= last then
        pos, last = r[2] + 1, r[2] + 1
        if r.n == 2 then return raw_sub(s, r[1], r[2]) end
        return unpack(r, 3, r.n)
      end
      pos = pos + 1
    end
    return nil
  end
end

local function expand(repl, whole, caps, capn)
  return (raw_gsub(repl, "%%(.)", function(d)
    if d == "0" then return whole end
    local i = raw_byte(d) - 48
    if i >= 1 and i <= 9 then
      if capn == 0 and i == 1 then return whole end
      if i > capn then raw_error("invalid capture index %" .. d .. " in replacement string", 0) end
      return raw_tostring(caps[i])
    end
    if d == "%" then return "%" end
    raw_error("invalid use of '%' in replacement string", 0)
  end))
end

function S.gsub(s, p, repl, n)
  check_str("gsub", 1, s); check_str("gsub", 2, p)
  if plan("string.gsub", s, p, true) == "direct" then return raw_gsub(s, p, repl, n) end
  s, p = raw_tostring(s), raw_tostring(p)
  local rt = raw_type(repl)
  if rt ~= "string" and rt ~= "number" and rt ~= "table" and rt ~= "function" then
    raw_error("bad argument #3 to 'gsub' (string/function/table expected, got " .. rt .. ")", 2)
  end
  local ap, pos, last, out, count = "^" .. p, 1, nil, {}, 0
  local max_n = n or m_huge
  while count < max_n and pos <= #s + 1 do
    check_clock()
    local r = pack(raw_find(s, ap, pos))
    if r[1] and r[2] + 1 ~= last then
      count = count + 1
      local whole = raw_sub(s, r[1], r[2])
      local caps, capn = {unpack(r, 3, r.n)}, r.n - 2
      local first = capn > 0 and caps[1] or whole
      local v
      if rt == "table" then v = repl[first]
      elseif rt == "function" then v = repl(unpack(capn > 0 and caps or {whole}, 1, capn > 0 and capn or 1))
      else v = expand(raw_tostring(repl), whole, caps, capn) end
      if v == nil or v == false then v = whole
      elseif raw_type(v) ~= "string" and raw_type(v) ~= "number" then
        raw_error("invalid replacement value (a " .. raw_type(v) .. ")", 2)
      end
      out[#out + 1] = v
      pos, last = r[2] + 1, r[2] + 1
    elseif pos <= #s then
      out[#out + 1] = raw_sub(s, pos, pos)
      pos = pos + 1
    else
      break
    end
  end
  out[#out + 1] = raw_sub(s, pos)
  return tconcat(out), count
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

local T = {}
for k, v in raw_pairs(table) do T[k] = v end
function T.move(a1, f, e, t, a2)
  if raw_type(f) == "number" and raw_type(e) == "number" and e - f >= max_move then
    raw_error("table.move: range of " .. raw_format("%.0f", e - f + 1) .. " elements is over the sandbox limit", 2)
  end
  return raw_move(a1, f, e, t, a2)
end

local M = {}
for k, v in raw_pairs(math) do M[k] = v end
local U = {}
for k, v in raw_pairs(utf8) do U[k] = v end
local O = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}
local C = {create = new_thread, resume = resume, wrap = wrap, yield = yield, status = co_status,
  running = co_running, isyieldable = co_isyieldable, close = close_}

local function forbid(tbl, what, names)
  local set = {}
  for _, k in ipairs(names) do set[k] = true end
  return raw_setmetatable(tbl, {__metatable = false, __index = function(_, k)
    if set[k] then raw_error(what .. k .. " is not available in the Lua sandbox", 2) end
  end})
end

-- the string metatable is hidden; its __index is the current safe string table
local smt = raw_getmetatable("")
smt.__metatable = false

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
  logbuf[#logbuf + 1] = {level, raw_tostring(msg), fields}
end

local function print_(...)
  local parts = {}
  for i = 1, raw_select("#", ...) do parts[i] = raw_tostring((raw_select(i, ...))) end
  emit("info", tconcat(parts, "\t"))
end

local FORBIDDEN_GLOBALS = {"io", "debug", "package", "python", "dofile", "loadfile", "collectgarbage",
  "loadstring", "module", "jit", "ffi"}
local forbidden = {}
for _, k in ipairs(FORBIDDEN_GLOBALS) do forbidden[k] = true end
local BASE = {
  assert = assert, error = raw_error, ipairs = ipairs, next = raw_next, pairs = raw_pairs,
  pcall = pcall_, xpcall = xpcall_, rawequal = rawequal, rawget = raw_rawget, rawlen = rawlen,
  rawset = raw_rawset, select = raw_select, setmetatable = setmetatable_, getmetatable = raw_getmetatable,
  tonumber = tonumber, tostring = raw_tostring, type = raw_type, print = print_, _VERSION = _VERSION,
}

-- Fresh copies of the library tables (S, T, M, U, O, C above are templates
-- never handed out): a reused state gives the next call pristine libraries.
local function copy(t)
  local c = {}
  for k, v in raw_next, t do c[k] = v end
  return c
end
local raw_randomseed = math.randomseed
local function fresh_libs(seed1, seed2)
  local s = forbid(copy(S), "string.", {"dump"})
  smt.__index = s
  BASE.string, BASE.table, BASE.math, BASE.utf8 = s, copy(T), copy(M), copy(U)
  BASE.os = forbid(copy(O), "os.", {"execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale"})
  BASE.coroutine = copy(C)
  -- randomseed() alone seeds from time(NULL) (seconds) and the state address
  if seed1 then raw_randomseed(seed1, seed2) else raw_randomseed() end
end
fresh_libs()

local function lazy(f)
  local done, value = false, nil
  return function()
    if not done then value = f(); done = true end
    return value
  end
end

-- new_env(owner, modules, imports, known): modules and imports map names to
-- zero-argument loaders; listed modules are globals and requirable, imports
-- only requirable, known-but-unlisted modules give a clear error.
local function new_env(owner, modules, imports, known)
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
    local l = raw_rawget(modules, name) or raw_rawget(imports, name)
    if l then return l() end
    if known[name] then raw_error(unlisted(name), 2) end
    raw_error(raw_format("module %q not found: not a module listed for %s nor one of its imports: aliases",
      name, owner), 2)
  end
  raw_setmetatable(env, {__metatable = false, __index = function(t, k)
    if forbidden[k] then raw_error(raw_tostring(k) .. " is not available in the Lua sandbox", 2) end
    local l = raw_rawget(modules, k)
    if l then local v = l(); raw_rawset(t, k, v); return v end
    if known[k] then raw_error(unlisted(k), 2) end
    return nil
  end})
  return env
end

-- Trusted wrapper code (our modules) sees host(), emit() and use(name): the
-- state's instance of another trusted module (nil if not loaded into this
-- state), so e.g. time.after can hand out a channel of the channel module.
local trusted = {}
do  -- a reused state forgets the previous call's module instances
  local libs_only = fresh_libs
  fresh_libs = function(seed1, seed2)
    trusted = {}
    return libs_only(seed1, seed2)
  end
end
local function use(name)
  local l = trusted[name]
  if l then return l() end
  return nil
end
-- Module code sees the private library templates (never handed to user code,
-- so nothing a call does to its own string/table/... copies reaches a module),
-- which lets a reused state keep each module chunk compiled; every load still
-- gets a fresh module table from lazy(chunk).
local TRUSTED_BASE = copy(BASE)
TRUSTED_BASE.string, TRUSTED_BASE.table, TRUSTED_BASE.math, TRUSTED_BASE.utf8 = S, T, M, U
TRUSTED_BASE.os, TRUSTED_BASE.coroutine = O, C
local trusted_chunks = {}
local function load_trusted(src, name)
  local chunk = trusted_chunks[src]
  if not chunk then
    local env = copy(TRUSTED_BASE)
    env.host, env.emit, env.use = host, emit, use
    -- src is bytecode compiled by sandbox.py from our own module text (never user input)
    local err
    chunk, err = raw_load(src, "=" .. name, "b", env)
    if not chunk then raw_error(err, 0) end
    trusted_chunks[src] = chunk
  end
  local l = lazy(chunk)
  trusted[name] = l
  return l
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

-- step(co, ...) -> "done", results | "request", op, args | "error", message
local function step(box, ...)
  local co = box[1]
  local r = pack(co_resume(co, ...))
  if not r[1] then
    if r[2] == "not enough memory" and not exceeded then exceeded, limit_msg = "memory", "memory limit exceeded" end
    return "error", errstr(r[2])
  end
  if co_status(co) == "dead" then return "done", r end
  if r[2] == REQ then return "request", r[3], r[4] end
  return "error", "coroutine.yield called outside a coroutine created by coroutine.create/wrap"
end

-- step_flat: step with results and request arguments inline ("done", ...results |
-- "request", op, ...args | "error", message): the process driver reads them in one
-- crossing instead of indexing a packed table (lua/process.py).
local function step_flat(box, ...)
  local co = box[1]
  local r = pack(co_resume(co, ...))
  if not r[1] then
    if r[2] == "not enough memory" and not exceeded then exceeded, limit_msg = "memory", "memory limit exceeded" end
    return "error", errstr(r[2])
  end
  if co_status(co) == "dead" then return "done", unpack(r, 2, r.n) end
  if r[2] == REQ then local a = r[4]; return "request", r[3], unpack(a, 1, a.n) end
  return "error", "coroutine.yield called outside a coroutine created by coroutine.create/wrap"
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
  new_env = new_env, load_trusted = load_trusted, step = step, step_flat = step_flat,
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

debug_sethook(hook, "", hook_every)
-- strip the real globals (defence in depth: they are unreachable anyway)
for _, k in ipairs({"python", "debug", "io", "package", "require", "dofile", "loadfile", "load",
  "collectgarbage", "os", "string"}) do
  _G[k] = nil
end
return ctl
