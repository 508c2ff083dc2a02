-- wrk -s bench/http/generate.lua: POST /api/generate, 16 new tokens, not streamed.
-- MODEL (env) names the served decoder.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local model = os.getenv("MODEL") or "gpt2"
wrk.body = '{"model":"' .. model .. '","prompt":"The weather today is","stream":false,' ..
           '"options":{"num_predict":16,"temperature":0}}'

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("generate: HTTP " .. status .. " " .. body .. "\n")
  end
end
