-- wrk script: what a chat widget sends when visitors reach a ticket step.
-- BENCH_KEY (widget key), BENCH_STEP (ticket step id); BENCH_DELAY_MS paces each connection.
local key = os.getenv("BENCH_KEY")
local step = os.getenv("BENCH_STEP")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = '{"query":"mutation($i: OpenTicketInput!) { openTicket(input: $i) { ticket { id number } } }",'
  .. '"variables":{"i":{"stepId":"' .. step .. '","message":"bench ticket"}}}'

function delay()
  return pause
end
