-- GCRA for one API key, atomically, on Redis TIME so that every replica shares one clock.
-- Same arithmetic as gcra.rs (read that first). All times are integer microseconds.
--
-- KEYS[1]  the key's state: a hash with fields r (requests TAT) and t (tokens TAT).
-- admit:   ARGV = 'admit', request interval, request span, token interval, token span
--          (an interval of 0 means that limit is off). Refuses while the token budget has no
--          room for one token, else takes one request cell.
-- charge:  ARGV = 'charge', token cost. May run the tokens TAT past the burst: debt.
-- Returns {0, 0} when admitted or charged, {1, wait} for the request limit, {2, wait} for
-- the token limit, wait in microseconds.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'r', 't')
local r = math.max(tonumber(state[1]) or now, now)
local t = math.max(tonumber(state[2]) or now, now)

if ARGV[1] == 'charge' then
  t = t + tonumber(ARGV[2])
else
  local token_interval = tonumber(ARGV[4])
  if token_interval > 0 then
    local ahead = t + token_interval - now
    local span = tonumber(ARGV[5])
    if ahead > span then
      return {2, ahead - span}
    end
  end
  local request_interval = tonumber(ARGV[2])
  if request_interval > 0 then
    local ahead = r + request_interval - now
    local span = tonumber(ARGV[3])
    if ahead > span then
      return {1, ahead - span}
    end
    r = r + request_interval
  end
end

-- Once both TATs have passed, the state equals that of a key never seen: let it expire then.
local busy_for = math.max(r, t) - now
if busy_for <= 0 then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
-- %.0f keeps all 16 digits; Lua's default number format would round to 14.
redis.call('HSET', KEYS[1], 'r', string.format('%.0f', r), 't', string.format('%.0f', t))
redis.call('PEXPIRE', KEYS[1], math.ceil(busy_for / 1000) + 1)
return {0, 0}
