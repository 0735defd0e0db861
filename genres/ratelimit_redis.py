"""The shared limiter: the rules of ``genres.ratelimit`` kept in Redis for every worker.

Two Lua scripts do all the work atomically on Redis's own clock (so processes on different
machines share one time): ``acquire`` applies the additive increase, checks the hold, the
window and the burst cap, picks whose turn it is and takes the slot; ``penalize`` sets the
hold and applies the decrease. Keys (under the prefix): ``window`` (sorted set of send
times), ``hold``, ``smooth``, ``learned`` (hash: budget, changed, decreased),
``waiting:interactive`` / ``waiting:background`` (sorted sets: party -> when it asks again),
``served`` (party -> last grant) and ``streak``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from genres.ratelimit_core import (
    ANONYMOUS_PARTY_PREFIX,
    BACKGROUND_EVERY,
    BUSY_FRACTION,
    DECREASE_FACTOR,
    DECREASE_FLOOR,
    DEFAULT_ACQUIRE_TIMEOUT,
    GENTLE_AFTER_WINDOWS,
    LEARNED_MEMORY_SECONDS,
    PACE_FACTOR,
    PRIORITY_INTERACTIVE,
    SERVED_MEMORY_SECONDS,
    SHORT_WINDOW_FRACTION,
    SMOOTH_AFTER_429,
    SMOOTHING_SECONDS,
    TURN_WAIT_SECONDS,
    WAITER_GRACE_SECONDS,
    WAKE_JITTER_SECONDS,
    WINDOW_MARGIN_SECONDS,
    WINDOW_SECONDS,
    BudgetState,
    RateLimiterTimeout,
    check_priority,
    increase_step,
    min_budget,
)
from genres.ratelimit_local import LocalRateLimiter, anonymous_party, timeout_message

logger = logging.getLogger("genres.ratelimit")

# Redis calls of the limiter must fail fast: a scan waits on them for every request.
REDIS_SOCKET_TIMEOUT = 0.25
# After a Redis failure the local fallback is used this long before Redis is tried again.
REDIS_RETRY_SECONDS = 15.0
REDIS_KEY_PREFIX = "swedify:spotify-ratelimit"
US = 1_000_000

_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local party, priority = ARGV[7], ARGV[8]
local adaptive = ARGV[9] == '1' and limit > 0
local memory_ms = math.ceil(tonumber(ARGV[15]) / 1000)
local function us(x) return string.format('%.0f', x) end
local function allowed_of(l) return math.max(1, math.floor(l + 1e-9)) end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', us(now - 2 * window))
local learned, changed, short_limit, short_window = limit, now, 0, 0
if adaptive then
  local state = redis.call('HMGET', KEYS[4], 'budget', 'changed', 'short_limit', 'short_window',
                           'short_changed')
  if state[1] then learned, changed = tonumber(state[1]), tonumber(state[2]) end
  if state[3] then
    short_limit, short_window = tonumber(state[3]), tonumber(state[4])
    -- The short window probes up too: one more after each of our windows in which it was
    -- used to the full, so a low first estimate does not stick.
    if now - tonumber(state[5] or '0') >= window then
      local used = redis.call('ZCOUNT', KEYS[1], '(' .. us(now - short_window), '+inf')
      if used >= tonumber(ARGV[10]) * short_limit then
        short_limit = short_limit + 1
        redis.call('HSET', KEYS[4], 'short_limit', tostring(short_limit), 'short_changed', us(now))
      end
    end
  end
  if learned < limit then
    if now - changed > tonumber(ARGV[12]) then
      learned, short_limit = limit, 0
      redis.call('DEL', KEYS[4])
    elseif now - changed >= window then
      local used = redis.call('ZCOUNT', KEYS[1], '(' .. us(now - window), '+inf')
      if used >= tonumber(ARGV[10]) * allowed_of(learned) then
        learned = math.min(limit, learned + tonumber(ARGV[11]))
        redis.call('HSET', KEYS[4], 'budget', tostring(learned), 'changed', us(now))
        redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[12]) / 1000))
      end
    end
  end
end

local allowed = allowed_of(learned)
local option = tonumber(ARGV[3])
local cap, cap_window = 0, 0
if limit > 0 and option < 0 then
  cap, cap_window = 1, window / (allowed * tonumber(ARGV[4]))
elseif limit > 0 and option > 0 then
  cap = math.max(1, math.floor(option * allowed / limit))
  if cap >= allowed then cap = 0 end
  cap_window = window * cap / allowed
end
local smooth = ARGV[6] == 'always'
if ARGV[6] == 'after-429' then
  smooth = learned < limit or redis.call('EXISTS', KEYS[3]) == 1
end

local function slot_wait()
  local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
  if hold > now then return hold - now end
  if limit <= 0 then return 0 end
  local count = redis.call('ZCARD', KEYS[1])
  local wait = 0
  if count >= allowed then
    local oldest = redis.call('ZRANGE', KEYS[1], count - allowed, count - allowed, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
  end
  if smooth and cap > 0 and count >= cap then
    local first = redis.call('ZRANGE', KEYS[1], count - cap, count - cap, 'WITHSCORES')
    local w = tonumber(first[2]) + cap_window - now
    if w > wait then wait = w end
  end
  if short_limit > 0 and count >= short_limit then
    local first = redis.call('ZRANGE', KEYS[1], count - short_limit, count - short_limit,
                             'WITHSCORES')
    local w = tonumber(first[2]) + short_window - now
    if w > wait then wait = w end
  end
  return wait
end

local waiting = {interactive = KEYS[5], background = KEYS[6]}
local turn_wait = tonumber(ARGV[13])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. us(now - tonumber(ARGV[14])))
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. us(now - tonumber(ARGV[14])))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. us(now - tonumber(ARGV[15])))
redis.call('ZADD', KEYS[7], 'NX', us(now), party)
local function served(name) return tonumber(redis.call('ZSCORE', KEYS[7], name) or now) end
local function before(a, sa, b, sb) return sa < sb or (sa == sb and a < b) end

-- Waiting members are "<ticket> <party>": a party waits while any of its requests does.
local function party_of(member) return string.match(member, '^%S+ (.*)$') end
local function parties(key, max)
  local set, list = {}, {}
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', max)) do
    local name = party_of(member)
    if name and not set[name] then set[name] = true; table.insert(list, name) end
  end
  return list, set
end
local mine_member = ARGV[18] .. ' ' .. party

local wait = slot_wait()
if wait <= 0 then
  local due_max = us(now + turn_wait)
  local due, present_interactive, present_background = {}, nil, nil
  due.interactive, present_interactive = parties(KEYS[5], due_max)
  due.background, present_background = parties(KEYS[6], due_max)
  local present = present_background
  if priority == 'interactive' then present = present_interactive end
  if not present[party] then table.insert(due[priority], party) end
  local class = 'background'
  if #due.interactive > 0 and #due.background > 0 then
    local streak = tonumber(redis.call('GET', KEYS[8]) or '0')
    if streak < tonumber(ARGV[16]) - 1 then class = 'interactive' end
  elseif #due.interactive > 0 then
    class = 'interactive'
  end
  local best, best_served = nil, nil
  for _, name in ipairs(due[class]) do
    local s = served(name)
    if best == nil or before(name, s, best, best_served) then best, best_served = name, s end
  end
  if best == party and class == priority then
    if limit > 0 then
      redis.call('ZADD', KEYS[1], us(now), ARGV[5])
      redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window / 1000) + 1000)
    end
    redis.call('ZREM', waiting[priority], mine_member)
    if priority == 'interactive' and redis.call('ZCARD', KEYS[6]) > 0 then
      redis.call('INCR', KEYS[8])
    else
      redis.call('SET', KEYS[8], '0')
    end
    redis.call('PEXPIRE', KEYS[8], memory_ms)
    if string.sub(party, 1, string.len(ARGV[17])) == ARGV[17] then
      redis.call('ZREM', KEYS[7], party)
    else
      redis.call('ZADD', KEYS[7], us(now), party)
    end
    redis.call('PEXPIRE', KEYS[7], memory_ms)
    return {0, 0, us(now), tostring(learned)}
  end
  -- Someone else's turn: ask again for the next slot (paced, a spacing later).
  wait = turn_wait
  if smooth and option < 0 and cap_window > wait then wait = cap_window end
end

redis.call('ZADD', waiting[priority], us(now + wait), mine_member)
redis.call('PEXPIRE', waiting[priority], memory_ms)
redis.call('PEXPIRE', KEYS[7], memory_ms)
local mine = served(party)
local ahead = 0
for _, name in ipairs(parties(waiting[priority], '+inf')) do
  if name ~= party and before(name, served(name), party, mine) then ahead = ahead + 1 end
end
if priority == 'background' then ahead = ahead + #parties(KEYS[5], '+inf') end
local expected = math.max(wait, slot_wait())
if limit > 0 then expected = expected + ahead * window / allowed_of(learned) end
return {math.ceil(wait), math.ceil(expected), us(now), tostring(learned)}
"""

_PENALIZE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function us(x) return string.format('%.0f', x) end
local hold_until = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if hold_until > hold then
  redis.call('SET', KEYS[1], us(hold_until), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local limit = tonumber(ARGV[4])
if ARGV[6] ~= '1' or limit <= 0 then return tostring(limit) end
local state = redis.call('HMGET', KEYS[3], 'budget', 'decreased', 'short_limit', 'short_window')
local learned = tonumber(state[1] or limit)
local decreased = tonumber(state[2] or '-1e18')
local sent = tonumber(ARGV[3])
if sent <= 0 then sent = now end
-- A request sent before the last decrease left at the old rate: same congestion event.
if sent <= decreased then return tostring(learned) end
local window = tonumber(ARGV[5])
local factor = tonumber(ARGV[7])
local held = redis.call('ZCOUNT', KEYS[4], '(' .. us(sent - window), us(sent))
local ceiling = math.max(0, held - 1)
-- A real window shorter than ours: learned from the first 429 (everything before it was
-- admitted, so our oldest request is Spotify's, and it leaves Spotify's window at
-- now + Retry-After), then one fewer for each later event.
if state[3] then
  local short_window = tonumber(state[4])
  local in_short = redis.call('ZCOUNT', KEYS[4], '(' .. us(sent - short_window), us(sent))
  local short_limit = math.max(1, math.min(tonumber(state[3]) - 1, in_short - 1))
  redis.call('HSET', KEYS[3], 'short_limit', tostring(short_limit), 'short_changed', us(now))
elseif learned >= limit and held > 0 and tonumber(ARGV[1]) > 0 then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. us(sent - window), us(sent),
                            'WITHSCORES', 'LIMIT', 0, 1)
  local estimate = now + tonumber(ARGV[1]) - tonumber(oldest[2])
  if estimate < window * tonumber(ARGV[13]) then
    local in_short = redis.call('ZCOUNT', KEYS[4], '(' .. us(sent - estimate), us(sent))
    redis.call('HSET', KEYS[3], 'short_limit', tostring(math.max(1, in_short - 1)),
               'short_window', us(estimate + tonumber(ARGV[14])), 'short_changed', us(now))
  end
end
local target
if now - decreased >= tonumber(ARGV[11]) * window and ceiling >= learned * factor then
  target = math.min(learned, ceiling) - tonumber(ARGV[12])
else
  target = math.min(learned * factor, ceiling)
end
learned = math.max(tonumber(ARGV[9]), learned * tonumber(ARGV[8]), target)
redis.call('HSET', KEYS[3], 'budget', tostring(learned), 'changed', us(now), 'decreased', us(now))
redis.call('PEXPIRE', KEYS[3], ARGV[10])
return tostring(learned)
"""


class RedisRateLimiter:
    """The same rules as LocalRateLimiter, kept in Redis so all workers share them.

    On any Redis error it logs once per outage and uses a LocalRateLimiter with the same
    budget (starting from the last budget learned in Redis) until Redis answers again.
    """

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        *,
        url: str,
        burst: int | None = None,
        smooth: str = SMOOTH_AFTER_429,
        margin: float = WINDOW_MARGIN_SECONDS,
        adaptive: bool = True,
        key_prefix: str = REDIS_KEY_PREFIX,
        retry_redis_after: float = REDIS_RETRY_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.fallback = LocalRateLimiter(
            limit, window, burst=burst, smooth=smooth, margin=margin, adaptive=adaptive,
            sleep=sleep,
        )  # fmt: skip
        self.limit = limit
        self.smooth = smooth
        self.adaptive = self.fallback.adaptive
        self.window = self.fallback.window
        self._window_us = int(self.window * US)
        self._burst_option = -1 if burst is None else burst
        prefix = key_prefix
        self.keys = [
            f"{prefix}:window",
            f"{prefix}:hold",
            f"{prefix}:smooth",
            f"{prefix}:learned",
            f"{prefix}:waiting:interactive",
            f"{prefix}:waiting:background",
            f"{prefix}:served",
            f"{prefix}:streak",
        ]
        self._sleep = sleep
        self._retry_redis_after = retry_redis_after
        self._redis_down_until = 0.0
        self._state_lock = threading.Lock()
        self._grants = threading.local()
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # No redis-py retries: a failed call falls back at once instead of backing off.
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._acquire_script = self._client.register_script(_ACQUIRE_SCRIPT)
        self._penalize_script = self._client.register_script(_PENALIZE_SCRIPT)

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._redis_down_until

    def _redis_failed(self, error: BaseException) -> None:
        with self._state_lock:
            first = not self.using_fallback
            self._redis_down_until = time.monotonic() + self._retry_redis_after
        if first:
            logger.warning(
                "Spotify rate limiter: Redis failed (%s); using a per-process limiter for %g s",
                error,
                self._retry_redis_after,
            )

    def rate(self) -> float:
        """Requests per second allowed now, from Redis (BudgetState.learned_rate)."""
        return self.state().learned_rate

    def configured_rate(self) -> float:
        return self.fallback.configured_rate()

    def state(self) -> BudgetState:
        if not self.using_fallback and self.adaptive:
            try:
                budget, short_limit, short_window = self._client.hmget(
                    self.keys[3], ["budget", "short_limit", "short_window"]
                )
            except self._redis_errors as error:
                self._redis_failed(error)
            else:
                if budget is not None:
                    self.fallback.adopt(float(budget))
                return BudgetState(
                    self.limit,
                    float(budget) if budget is not None else float(self.limit),
                    self.window,
                    shared=True,
                    short_limit=int(short_limit or 0),
                    short_window=int(short_window or 0) / US,
                )
        return replace(self.fallback.state(), shared=not self.using_fallback)

    def _try(self, party: str, priority: str, ticket: str) -> tuple[float, float]:
        wait_us, expected_us, now_us, learned = self._acquire_script(
            keys=self.keys,
            args=[
                self.limit,
                self._window_us,
                self._burst_option,
                PACE_FACTOR,
                uuid.uuid4().hex,
                self.smooth,
                party,
                priority,
                1 if self.adaptive else 0,
                BUSY_FRACTION,
                increase_step(self.limit),
                int(LEARNED_MEMORY_SECONDS * US),
                int(TURN_WAIT_SECONDS * US),
                int(WAITER_GRACE_SECONDS * US),
                int(SERVED_MEMORY_SECONDS * US),
                BACKGROUND_EVERY,
                ANONYMOUS_PARTY_PREFIX,
                ticket,
            ],
        )
        self.fallback.adopt(float(learned))
        if int(wait_us) <= 0:
            self._grants.at_us = int(now_us)
            # Keep the fallback's window warm so a switch to it mid-scan starts honest.
            self.fallback.record_send()
            return 0.0, 0.0
        return int(wait_us) / US, int(expected_us) / US

    def _leave(self, party: str, priority: str, ticket: str) -> None:
        # On failure the entry lapses by itself within WAITER_GRACE_SECONDS.
        key = self.keys[4 if priority == PRIORITY_INTERACTIVE else 5]
        with contextlib.suppress(*self._redis_errors):
            self._client.zrem(key, f"{ticket} {party}")

    def acquire(
        self,
        timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
    ) -> None:
        check_priority(priority)
        name = party or anonymous_party()
        ticket = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self.using_fallback:
                self._grants.at_us = None
                self.fallback.acquire(max(0.0, remaining), party=name, priority=priority)
                return
            try:
                wait, expected = self._try(name, priority, ticket)
            except self._redis_errors as error:
                self._redis_failed(error)
                continue
            if wait <= 0:
                return
            if wait > remaining:
                self._leave(name, priority, ticket)
                raise RateLimiterTimeout(timeout_message(timeout, expected), wait=expected)
            self._sleep(wait + random.uniform(0, WAKE_JITTER_SECONDS))

    def penalize(self, retry_after: float) -> None:
        # Locally too: if Redis fails during the hold, this process still honours it.
        self.fallback.penalize(retry_after)
        if self.using_fallback:
            return
        try:
            learned = self._penalize_script(
                keys=[self.keys[1], self.keys[2], self.keys[3], self.keys[0]],
                args=[
                    int(max(0.0, retry_after) * US),
                    int(SMOOTHING_SECONDS * 1000),
                    getattr(self._grants, "at_us", None) or 0,
                    self.limit,
                    self._window_us,
                    1 if self.adaptive else 0,
                    DECREASE_FACTOR,
                    DECREASE_FLOOR,
                    min_budget(self.limit),
                    int(LEARNED_MEMORY_SECONDS * 1000),
                    GENTLE_AFTER_WINDOWS,
                    increase_step(self.limit),
                    SHORT_WINDOW_FRACTION,
                    int(self.fallback.margin * US),
                ],
            )
        except self._redis_errors as error:
            self._redis_failed(error)
            return
        self.fallback.adopt(float(learned))
