{{ config(materialized='view', tags=['cio_mixed'],
          meta={'cio': {'kind': 'event', 'identifier': {'column': 'email', 'kind': 'email'},
                        'event_name': 'newsletter_opened', 'event_id_column': 'event_id', 'timestamp_column': 'event_at',
                        'initial_window': '36500d', 'max_event_age': '36500d'}}) }}
select 'n1' as event_id, 'jane.doe@example.com' as email, cast('2026-05-01 10:00:00' as timestamp) as event_at
