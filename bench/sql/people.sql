-- {schema}.{table}: {rows} people, keyed by n, with 12 typed attributes: 4 text, 2 integer,
-- 2 numeric, 2 boolean, 2 timestamps (one without, one with time zone). Some values are null,
-- as in real tables. Deterministic: the same rows every time.
create table {schema}.{table} as
select
    g.n,
    'p' || g.n as person_id,
    'user' || g.n || '@example.com' as email,
    (array['Ana', 'Ben', 'Chloé', 'Dmitri', 'Eve', 'Farah', 'Gus', 'Hana', 'Ivo', 'Jun'])[1 + g.n % 10]
        as first_name,
    (array['free', 'basic', 'pro', 'enterprise'])[1 + (g.n / 7) % 4] as plan,
    case when g.n % 13 = 0 then null
         else (array['Lisbon', 'Osaka', 'Lagos', 'Lima', 'Oslo', 'Pune', 'Quito', 'Rome'])[1 + (g.n / 3) % 8]
    end as city,
    cast((g.n * 7919) % 60 as integer) as orders_count,
    case when g.n % 20 = 0 then null else cast(18 + (g.n * 31) % 62 as integer) end as age,
    cast(((g.n * 104729) % 500000) / 100.0 as numeric(12, 2)) as lifetime_value,
    cast(((g.n * 7907) % 30000) / 100.0 as numeric(10, 2)) as avg_order_value,
    g.n % 10 = 0 as is_vip,
    case when g.n % 17 = 0 then null else g.n % 3 <> 0 end as email_opt_in,
    timestamp '2020-01-01 00:00:00' + (g.n * 157) % 157680000 * interval '1 second' as created_at,
    case when g.n % 7 = 0 then null
         else timestamptz '2025-01-01 00:00:00+00' + (g.n * 61) % 31536000 * interval '1 second'
    end as last_order_at
from generate_series(cast(1 as bigint), {rows}) as g(n);
alter table {schema}.{table} add primary key (n);
analyze {schema}.{table};
