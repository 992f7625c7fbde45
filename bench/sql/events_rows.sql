-- Purchase events n = {first}..{last} of {people} people, for `create table ... as` (the initial
-- events) and `insert into ... ` (the 1% new ones). Each is within the last year and at least a
-- minute old, so every one is sent (the model's initial_window and max_event_age are 36500d).
-- Deterministic apart from their times, which are relative to now.
select
    g.n,
    'e' || g.n as event_id,
    'p' || (1 + (g.n * 7) % {people}) as person_id,
    cast(localtimestamp(0) as timestamp) - interval '1 minute' - (g.n * 97) % 31536000 * interval '1 second'
        as event_at,
    cast(((g.n * 104723) % 100000) / 100.0 as numeric(12, 2)) as order_total,
    'SKU-' || (g.n * 13) % 5000 as sku,
    cast(1 + g.n % 5 as integer) as quantity,
    (array['web', 'ios', 'android', 'store'])[1 + g.n % 4] as channel,
    g.n % 17 = 0 as is_first_order
from generate_series(cast({first} as bigint), {last}) as g(n)
