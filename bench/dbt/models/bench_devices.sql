{{ config(meta={'cio': {
    'kind': 'device',
    'identifier': {'column': 'person_id', 'kind': 'id'},
    'token_column': 'token',
    'platform_column': 'platform',
    'last_used_column': 'last_used_at',
    'on_delete': 'delete',
    'max_deletes': '2%',
    'build_log_schema': var('cio_state_schema'),
}}) }}
select person_id, 'tok-' || n as token, case when n % 2 = 0 then 'ios' else 'android' end as platform,
    last_order_at as last_used_at, first_name as app_locale
from {{ source('bench', 'entities') }}
