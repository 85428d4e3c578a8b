//! The Lua scripts of the locks. Each runs atomically on one Redis node and reads the
//! clock of that node (`TIME`), never a client's.
//!
//! Keys of one resource (`base` = prefix + `{Resource::key()}`):
//! - `base:w`: the writer's token, with the lease's expiry (`PX`);
//! - `base:r`: the readers, a ZSET of tokens scored by the server time (ms) at which each
//!   reader's lease ends, so readers expire one by one;
//! - `base:fence`: the fencing counter (`INCR` on every acquisition, in any mode);
//! - fair queue only: `base:q` (waiters scored by a ticket from `base:ticket`), `base:qm`
//!   (each waiter's mode) and `base:alive` (each waiter's liveness deadline, refreshed
//!   while it waits; a waiter past it is dropped).

use redis::Script;

/// Server time in ms, shared by every script.
const NOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// Takes the lock if compatible: KEYS w, r, fence; ARGV token, mode (`r`/`w`), ttl ms.
/// Returns `{1, fence}` or `{0, 0}`.
const TAKE: &str = r"
local function take(wkey, rkey, fkey, token, mode, ttl, now)
  redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now)
  if redis.call('EXISTS', wkey) == 1 then return false end
  if mode == 'w' then
    if redis.call('ZCARD', rkey) > 0 then return false end
    redis.call('SET', wkey, token, 'PX', ttl)
  else
    redis.call('ZADD', rkey, now + ttl, token)
    local last = redis.call('ZRANGE', rkey, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', rkey, tonumber(last[2]))
  end
  return redis.call('INCR', fkey)
end
";

pub(crate) fn acquire() -> Script {
    Script::new(&format!(
        "{NOW}{TAKE}
local fence = take(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), now)
if fence then return {{1, fence}} end
return {{0, 0}}"
    ))
}

/// The fair variant: KEYS w, r, fence, q, qm, alive, ticket; ARGV token, mode, ttl ms,
/// waiter ttl ms, max waiting. Returns `{1, fence}` (taken), `{0, position}` (waiting) or
/// `{-1, waiting}` (the queue is full).
pub(crate) fn acquire_fair() -> Script {
    Script::new(&format!(
        "{NOW}{TAKE}
local q, qm, alive = KEYS[4], KEYS[5], KEYS[6]
local token, mode, waiter_ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
-- Waiters that stopped refreshing their place (crashed, cut off) leave the queue.
local dead = redis.call('ZRANGEBYSCORE', alive, '-inf', now)
for _, d in ipairs(dead) do
  redis.call('ZREM', q, d)
  redis.call('HDEL', qm, d)
  redis.call('ZREM', alive, d)
end
if not redis.call('ZSCORE', q, token) then
  local waiting = redis.call('ZCARD', q)
  if waiting >= tonumber(ARGV[5]) then return {{-1, waiting}} end
  redis.call('ZADD', q, redis.call('INCR', KEYS[7]), token)
  redis.call('HSET', qm, token, mode)
end
redis.call('ZADD', alive, now + waiter_ttl, token)
for _, k in ipairs({{q, qm, alive}}) do redis.call('PEXPIRE', k, waiter_ttl) end
local rank = redis.call('ZRANK', q, token)
-- A writer goes first in line; a reader goes when only readers are ahead of it.
if rank > 0 then
  if mode == 'w' then return {{0, rank}} end
  local ahead = redis.call('ZRANGE', q, 0, rank - 1)
  for _, a in ipairs(ahead) do
    if redis.call('HGET', qm, a) ~= 'r' then return {{0, rank}} end
  end
end
local fence = take(KEYS[1], KEYS[2], KEYS[3], token, mode, tonumber(ARGV[3]), now)
if not fence then return {{0, rank}} end
redis.call('ZREM', q, token)
redis.call('HDEL', qm, token)
redis.call('ZREM', alive, token)
return {{1, fence}}"
    ))
}

/// Leaves the fair queue: KEYS q, qm, alive; ARGV token.
pub(crate) fn leave_queue() -> Script {
    Script::new(
        r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1",
    )
}

/// Extends a lease if its token still holds it: KEYS w, r; ARGV token, mode, ttl ms.
/// Returns 1 or 0.
pub(crate) fn extend() -> Script {
    Script::new(&format!(
        "{NOW}
local ttl = tonumber(ARGV[3])
if ARGV[2] == 'w' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
  end
  return 0
end
local until_ms = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not until_ms or tonumber(until_ms) <= now then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], tonumber(last[2]))
return 1"
    ))
}

/// Gives a lease up if its token still holds it: KEYS w, r; ARGV token, mode. Returns 1
/// when something was released.
pub(crate) fn release() -> Script {
    Script::new(
        r"
if ARGV[2] == 'w' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[1])",
    )
}
