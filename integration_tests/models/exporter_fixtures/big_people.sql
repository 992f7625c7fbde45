{{ config(materialized='table', tags=['cio_big'],
          meta={'cio': {'kind': 'people', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'on_delete': 'delete', 'max_deletes': '10%'}}) }}
{#- var cio_big_rows people for the state and fault tests (PostgreSQL or DuckDB). -#}
select
    'person-' || cast(n as varchar) as person_id,
    'p' || cast(n as varchar) || '@example.org' as email,
    cast(n as integer) as n,
    cast(n * 1.5 as double precision) as score,
    mod(n, 2) = 0 as even,
    cast('2026-01-01 00:00:00' as timestamp) as created_at
from {{ 'generate_series(1, ' ~ var('cio_big_rows', 1000) ~ ') as g(n)' if target.type == 'postgres'
        else 'range(1, ' ~ (var('cio_big_rows', 1000) + 1) ~ ') as g(n)' }}
