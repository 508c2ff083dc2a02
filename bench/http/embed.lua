-- wrk -s bench/http/embed.lua: POST /api/embed with one short sentence per request.
-- MODEL (env) names the served encoder.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local model = os.getenv("MODEL") or "bert-tiny"
wrk.body = '{"model":"' .. model .. '","input":"the quick brown fox jumps over the lazy dog"}'

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("embed: HTTP " .. status .. " " .. body .. "\n")
  end
end
