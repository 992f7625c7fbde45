{%- set change = env_var('CIO_PR_CHANGE', 'none').split(',') %}
{{ config(materialized='table', tags=['cio_pr'],
          enabled=var('cio_exporter_fixtures', false) and 'remove' not in change,
          meta={'cio': {'kind': 'event',
                        'identifier': {'column': 'email', 'kind': 'email'} if 'identifier_kind' in change
                                      else {'column': 'customer_id', 'kind': 'id'},
                        'event_name': 'plan_viewed', 'event_id_column': 'event_id', 'timestamp_column': 'viewed_at',
                        'initial_window': '36500d', 'max_event_age': '36500d'}}) }}
{#- Events as a pull request may change them (see pr_people): `identifier_kind` identifies their
    people by email, `remove` disables the model. -#}
select 'v1' as event_id, 'c1' as customer_id, 'c1@example.com' as email,
       cast('2026-05-01 10:00:00' as timestamp) as viewed_at, 'gold' as plan
union all
select 'v2', 'c2', 'c2@example.com', cast('2026-05-02 10:00:00' as timestamp), 'silver'
