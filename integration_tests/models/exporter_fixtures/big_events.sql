{{ config(materialized='table', tags=['cio_big'],
          meta={'cio': {'kind': 'event', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'event_name': 'big_thing', 'event_id_column': 'event_id', 'timestamp_column': 'event_at',
                        'initial_window': '36500d', 'max_event_age': '36500d', 'max_lag': '1d'}}) }}
{#- One event per big_people person. -#}
select
    'ev-' || cast(n as varchar) as event_id,
    'person-' || cast(n as varchar) as person_id,
    cast('2026-05-01 00:00:00' as timestamp) as event_at,
    cast(n as integer) as n,
    'thing ' || cast(n as varchar) as label
from {{ 'generate_series(1, ' ~ var('cio_big_rows', 1000) ~ ') as g(n)' if target.type == 'postgres'
        else 'range(1, ' ~ (var('cio_big_rows', 1000) + 1) ~ ') as g(n)' }}
