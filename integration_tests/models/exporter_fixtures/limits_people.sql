{{ config(materialized='table', tags=['cio_limits'],
          meta={'cio': {'kind': 'people', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'key_column': 'person_key', 'exclude': ['person_key']}}) }}
{#- Rows that break Customer.io's limits one way each; the exporter must reject exactly
    these rows, naming the column, and deliver the rest. A stable key other than the
    identifier (person_key): a refused person's events are still held back. -#}
select 'k-' || person_id as person_key, limits.*
from (
    select 'p1' as person_id, 'fine' as note, cast(1.5 as double precision) as score, cast('2026-05-01 10:00:00' as timestamp) as seen_at, true as flag
    union all select 'p2', repeat('x', 1001), cast(2 as double precision), cast('2026-05-01 10:00:00' as timestamp), false
    union all select repeat('i', 151), 'long identifier', cast(3 as double precision), cast('2026-05-01 10:00:00' as timestamp), true
    union all select 'p4', 'not a number', cast('NaN' as double precision), cast('2026-05-01 10:00:00' as timestamp), true
    union all select 'p5', null, cast(5 as double precision), null, null
) as limits
