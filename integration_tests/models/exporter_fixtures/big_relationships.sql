{{ config(materialized='table', tags=['cio_big_removals'],
          meta={'cio': {'kind': 'relationship', 'object_type_id': '1', 'object_id_column': 'subscription_id',
                        'identifier': {'column': 'person_id', 'kind': 'id'},
                        'on_delete': 'delete', 'max_deletes': '60%'}}) }}
{#- var cio_big_rows people each related to a subscription object, for the crash tests of
    removals: with var cio_big_removals_half, the odd half of the pairs has left. -#}
select
    'person-' || cast(n as varchar) as person_id,
    'sub-' || cast(n as varchar) as subscription_id,
    case when mod(n, 3) = 0 then 'paused' else 'active' end as status
from {{ 'generate_series(1, ' ~ var('cio_big_rows', 1000) ~ ') as g(n)' if target.type == 'postgres'
        else 'range(1, ' ~ (var('cio_big_rows', 1000) + 1) ~ ') as g(n)' }}
{%- if var('cio_big_removals_half', false) %}
where mod(n, 2) = 0
{%- endif %}
