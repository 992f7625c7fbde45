{%- set change = env_var('CIO_PR_CHANGE', 'none').split(',') %}
{{ config(materialized='table', tags=['cio_pr'], alias='pr_customers' if 'rename' in change else none,
          meta={'cio': {'kind': 'people',
                        'identifier': {'column': 'email', 'kind': 'email'} if 'identifier_kind' in change
                                      else {'column': 'customer_id', 'kind': 'id'},
                        'on_delete': 'delete', 'max_deletes': 1}}) }}
{#- People as a pull request may change them (cio-export check), by the changes named in env var
    CIO_PR_CHANGE (comma-separated): `payload_shape` sends visits as text, `identifier_kind`
    identifies people by email, `drop_one` leaves c4 out (within max_deletes 1), `drop` leaves
    c3 and c4 out (over it), `rename` builds it as pr_customers; without any, production's
    build. -#}
select customer_id, email, plan,
       {{ 'cast(visits as varchar)' if 'payload_shape' in change else 'visits' }} as visits
from (
    select 'c1' as customer_id, 'c1@example.com' as email, 'gold' as plan, 3 as visits
    union all select 'c2', 'c2@example.com', 'silver', 1
    union all select 'c3', 'c3@example.com', 'silver', 2
    union all select 'c4', 'c4@example.com', 'bronze', 5
) as people
{%- if 'drop' in change %}
where customer_id in ('c1', 'c2')
{%- elif 'drop_one' in change %}
where customer_id <> 'c4'
{%- endif %}
