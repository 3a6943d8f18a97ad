-- Shared by the scripts on Spool's global keys: it is prepended to each of them.
--
-- KEYS[1] is the global key base, `{<prefix>}`: the worker registry and leases, the list of
-- queues and the meta hash (schema version, restart epoch) share its slot.

local base = KEYS[1]
local K_WORKERS = base .. ':workers'
local K_LEASES = base .. ':leases'
local K_QUEUES = base .. ':queues'
local K_META = base .. ':meta'
-- Operator controls: `paused:<queue>` and `quiet:<worker>` marks, `epoch:<name>` epochs.
local K_CONTROL = base .. ':control'


-- {now, queue names...}: per-queue steps follow in calls of their own.
local function with_queues(head)
  local queues = redis.call('SMEMBERS', K_QUEUES)
  for _, q in ipairs(queues) do
    head[#head + 1] = q
  end
  return head
end

-- {head..., the queues `worker` serves}: a worker holds jobs only in the queues it reserves
-- from, named in its registration; every queue if the registration is gone or unreadable.
local function with_worker_queues(head, worker)
  local record = redis.call('HGET', K_WORKERS, worker)
  local ok, info = pcall(cjson.decode, record or '')
  if not ok or type(info) ~= 'table' or type(info.queues) ~= 'table' then
    return with_queues(head)
  end
  for _, q in ipairs(info.queues) do
    head[#head + 1] = q
  end
  return head
end
