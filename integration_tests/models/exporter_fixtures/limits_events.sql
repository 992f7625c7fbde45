{{ config(materialized='table', tags=['cio_limits'],
          meta={'cio': {'kind': 'event', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'event_name': 'limit_checked', 'event_id_column': 'event_id', 'timestamp_column': 'event_at',
                        'json_columns': ['payload'], 'initial_window': '36500d', 'max_event_age': '36500d'}}) }}
{#- Events of the limits fixture: p2's identify is rejected, so its event must be held. -#}
select 'e1' as event_id, 'p1' as person_id, cast('2026-05-01 10:00:00' as timestamp) as event_at, '{"a":[1,2]}' as payload
union all select 'e2', 'p2', cast('2026-05-01 10:00:00' as timestamp), '{}'
union all select 'e3', 'p5', cast('2026-05-01 10:00:00' as timestamp), '{not json'
