{#- Every event is sent: initial_window and max_event_age are wider than any event's age. -#}
{{ config(meta={'cio': {
    'kind': 'event',
    'identifier': {'column': 'person_id', 'kind': 'id'},
    'event_name': 'bench_purchase',
    'event_id_column': 'event_id',
    'timestamp_column': 'event_at',
    'initial_window': '36500d',
    'max_event_age': '36500d',
    'build_log_schema': var('cio_state_schema'),
}}) }}
select event_id, person_id, event_at, order_total, sku, quantity, channel, is_first_order
from {{ source('bench', 'events') }}
