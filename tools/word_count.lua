-- app.tools:word_count: counts words (runs of non-space characters) and characters.
local M = {}

function M.handler(args)
  if type(args) ~= "table" or type(args.text) ~= "string" then
    return nil, "text must be a string"
  end
  local words = 0
  for _ in string.gmatch(args.text, "%S+") do
    words = words + 1
  end
  return {words = words, chars = utf8.len(args.text) or #args.text}
end

return M
