-- The requests of `make bench-http`, for wrk (bench/http_bench.py writes the inputs and reads the
-- result). Every bill gets its own Idempotency-Key, bill number, invoice number and invoice document:
-- nothing is a replay, nothing is refused as a duplicate.
--
-- Environment (set by bench/http_bench.py):
--   BENCH_MODE     ping (GET /api/v1/ping/), redeem (POST /api/v1/redemptions/, capture: true) or
--                  batch (POST /api/v1/redemptions/batch/ with BENCH_BATCH_SIZE bills, each captured)
--   BENCH_KEY      the provider's API key
--   BENCH_RUN      a label unique to this run: keys and bill numbers start with it
--   BENCH_GRANTS   grant ids, comma-separated; bills go to them in turn
--   BENCH_ITEMS    a file, one pre-uploaded invoice per line: "<document id> <invoice number>"
--   BENCH_THREADS  wrk's -t: thread i takes lines i, i + threads, i + 2 * threads, ...
--   BENCH_BILL_FEN the bill amount of every bill
--   BENCH_RESULT   where done() writes its JSON
--
-- An answer that is not the expected one (200 for ping and batch, 201 for redeem, and in a batch
-- each item 201 and not replayed) counts as unexpected. A thread that used all its invoices starts
-- over at its first one, which the service refuses (duplicate invoice): `wrapped` says so.

local mode = os.getenv("BENCH_MODE")
local run = os.getenv("BENCH_RUN")
local batch_size = tonumber(os.getenv("BENCH_BATCH_SIZE") or "1")
local bill_fen = os.getenv("BENCH_BILL_FEN")
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  auth = "Api-Key " .. os.getenv("BENCH_KEY")
  grants = {}
  for grant in string.gmatch(os.getenv("BENCH_GRANTS") or "", "%d+") do
    grants[#grants + 1] = grant
  end
  items = {}
  if mode ~= "ping" then
    local count = tonumber(os.getenv("BENCH_THREADS"))
    local line_number = 0
    for line in io.lines(os.getenv("BENCH_ITEMS")) do
      if line_number % count == id then
        local document, invoice = line:match("^(%d+) (%d+)$")
        items[#items + 1] = { document, invoice }
      end
      line_number = line_number + 1
    end
  end
  taken = 0
  wrapped = 0
  unexpected = 0
end

local function bill()
  taken = taken + 1
  local index = taken
  if index > #items then
    wrapped = 1
    index = (index - 1) % #items + 1
  end
  local item = items[index]
  local key = run .. "-" .. id .. "-" .. taken
  local grant = grants[(taken + id) % #grants + 1]
  return key, string.format(
    '{"grant":%s,"bill_number":"%s","bill_amount_fen":%s,"invoice_number":"%s","invoice_document":%s,"capture":true',
    grant, key, bill_fen, item[2], item[1]
  )
end

function request()
  local headers = { ["Authorization"] = auth }
  if mode == "ping" then
    return wrk.format("GET", "/api/v1/ping/", headers)
  end
  headers["Content-Type"] = "application/json"
  if mode == "redeem" then
    local key, body = bill()
    headers["Idempotency-Key"] = key
    return wrk.format("POST", "/api/v1/redemptions/", headers, body .. "}")
  end
  local parts = {}
  for i = 1, batch_size do
    local key, body = bill()
    parts[i] = body .. ',"idempotency_key":"' .. key .. '"}'
  end
  return wrk.format("POST", "/api/v1/redemptions/batch/", headers, '{"items":[' .. table.concat(parts, ",") .. "]}")
end

function response(status, headers, body)
  if mode == "redeem" then
    if status ~= 201 then
      unexpected = unexpected + 1
    end
  elseif status ~= 200 then
    unexpected = unexpected + 1
  elseif mode == "batch" then
    -- DRF's JSON is compact: each item's result carries "status":201 when it created its redemption
    -- (a redemption's own status is a word), and "replayed":true when it only replayed one.
    local _, created = string.gsub(body, '"status":201[,}]', "")
    local _, replayed = string.gsub(body, '"replayed":true', "")
    if created ~= batch_size or replayed > 0 then
      unexpected = unexpected + 1
    end
  end
end

function done(summary, latency, requests)
  local unexpected_total, wrapped_total, taken_max = 0, 0, 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + thread:get("unexpected")
    wrapped_total = wrapped_total + thread:get("wrapped")
    taken_max = math.max(taken_max, thread:get("taken"))
  end
  local errors = summary.errors
  local out = io.open(os.getenv("BENCH_RESULT"), "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"unexpected":%d,"wrapped":%d,'
      .. '"taken_max":%d,"threads":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    unexpected_total, wrapped_total, taken_max, #threads,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)
  ))
  out:close()
end
