{{ config(meta={'cio': {
    'kind': 'object',
    'object_type_id': '1',
    'identifier': {'column': 'object_id', 'kind': 'object_id'},
    'on_delete': 'delete',
    'max_deletes': '2%',
    'build_log_schema': var('cio_state_schema'),
}}) }}
select 'sub-' || n as object_id, plan, city, lifetime_value, created_at
from {{ source('bench', 'entities') }}
