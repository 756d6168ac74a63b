-- Pattern complexity guard, loaded into a state the first time its code calls
-- string.find/match/gmatch/gsub with a pattern (see sandbox.py for the reasoning).
-- Trusted: run once by bootstrap.lua with the raw functions it captured; the
-- string wrappers there check their arguments, then tail-call these.
local raw_find, raw_match, raw_gmatch, raw_gsub, raw_sub, raw_byte, raw_format, raw_tostring,
  raw_type, raw_error, pack, unpack, tconcat, m_log, m_huge, check_clock, max_pattern_steps, force_scan = ...
local G = {}

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
  -- quantified: items with up to n+1 choices (* + -); optional: items with 2 (?)
  local items, quantified, optional, trailing_q, trailing_opt, balanced = 0, 0, 0, false, false, 0
  while i <= n do
    local c = raw_byte(p, i)
    local single = true
    if c == 40 or c == 41 then               -- ( )
      single = false; i = i + 1
    elseif c == 36 and i == n then           -- $ at end: an item a quantifier may backtrack against
      single = false; i = i + 1; trailing_q, trailing_opt = false, false; items = items + 1
    elseif c == 37 then                      -- %
      local d = raw_byte(p, i + 1)
      if d == 98 then                        -- %bxy scans forward
        balanced = balanced + 1; single = false; i = i + 4; items = items + 1; trailing_q, trailing_opt = false, false
      elseif d == 102 then                   -- %f[set]
        single = false
        i = skip_set(p, i + 2)
        items = items + 1; trailing_q, trailing_opt = false, false
      elseif d and d >= 48 and d <= 57 then  -- back reference
        balanced = balanced + 1; single = false; i = i + 2; items = items + 1; trailing_q, trailing_opt = false, false
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
      trailing_q, trailing_opt = false, false
      local q = raw_byte(p, i)
      if q == 42 or q == 43 or q == 45 then quantified = quantified + 1; trailing_q = true; i = i + 1
      elseif q == 63 then optional = optional + 1; trailing_opt = true; i = i + 1 end
    end
  end
  -- a quantifier followed by nothing never backtracks
  local k = quantified - (trailing_q and 1 or 0)
  return k, items, anchored, optional - (trailing_opt and 1 or 0), balanced
end

local function too_complex(name, s, p)
  return raw_format("%s: pattern %q is too complex for a subject of %d bytes (its worst case "
    .. "cannot be interrupted by the time limit); simplify the pattern, anchor it, split the input "
    .. "or use plain=true", name, #p > 60 and raw_sub(p, 1, 57) .. "..." or p, #s)
end

-- log10 of the worst-case number of matcher steps.  The backtracking matcher
-- tries each way of splitting the subject among the k items quantified by
-- * + - (their lengths add up to at most n: C(n+k, k) ways, not (n+1)^k),
-- each ending in at most `items` single matches, and the scans of the runs
-- before them add at most n*k*C(n+k-1, k-1) <= k^2*C(n+k, k); each
-- optional item doubles that (`a?` x 28 before `a` x 28 is 2^28 tries); a
-- %b or a back reference scans up to n bytes per attempt; and an unanchored
-- search repeats it all from n start positions.  Lua patterns have no groups
-- to quantify, so this is an upper bound.
local LOG2 = m_log(2, 10)
local function steps(n, k, items, unanchored, optional, balanced)
  local ln = m_log(n + 1, 10)
  local s = m_log(items + 1 + k * k, 10) + (optional or 0) * LOG2 + ((balanced or 0) + (unanchored and 1 or 0)) * ln
  for i = 1, k do s = s + m_log((n + i) / i, 10) end
  return s
end
local max_steps_log = m_log(max_pattern_steps, 10)

-- "direct": the C matcher may run as is; "scan": run it anchored from each
-- start position in a Lua loop that checks the clock; raises when not even
-- one anchored attempt is bounded.
local function plan(name, s, p, anchorable)
  if raw_type(p) ~= "string" and raw_type(p) ~= "number" then return "direct" end
  if raw_type(s) ~= "string" and raw_type(s) ~= "number" then return "direct" end
  s, p = raw_tostring(s), raw_tostring(p)
  local k, items, anchored, optional, balanced = pattern_cost(p, anchorable)
  if force_scan then return anchored and "direct" or "scan" end  -- tests: prove scan == C matcher
  if steps(#s, k, items, not anchored, optional, balanced) <= max_steps_log then return "direct" end
  if not anchored and steps(#s, k, items, false, optional, balanced) <= max_steps_log then return "scan" end
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


function G.find(s, p, init)
  if plan("string.find", s, p, true) == "scan" then return scan_find(s, p, init, false) end
  return raw_find(s, p, init)
end

function G.match(s, p, init)
  if plan("string.match", s, p, true) == "scan" then return scan_find(s, p, init, true) end
  return raw_match(s, p, init)
end

function G.gmatch(s, p, init)
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

function G.gsub(s, p, repl, n)
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

return G
