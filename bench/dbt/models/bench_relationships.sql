{{ config(meta={'cio': {
    'kind': 'relationship',
    'object_type_id': '1',
    'identifier': {'column': 'person_id', 'kind': 'id'},
    'object_id_column': 'object_id',
    'on_delete': 'delete',
    'max_deletes': '2%',
    'build_log_schema': var('cio_state_schema'),
}}) }}
select person_id, 'sub-' || n as object_id, plan as role, created_at as since
from {{ source('bench', 'entities') }}
