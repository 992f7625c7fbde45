{%- set change = env_var('CIO_PR_CHANGE', 'none').split(',') %}
{{ config(materialized='table', tags=['cio_pr'],
          enabled=var('cio_exporter_fixtures', false) and 'new' in change,
          meta={'cio': {'kind': 'object', 'object_type_id': '2',
                        'identifier': {'column': 'plan_id', 'kind': 'object_id'}}}) }}
{#- A synced model a pull request adds (see pr_people): enabled by `new`. -#}
select 'gold' as plan_id, 30 as price
union all
select 'silver', 20
