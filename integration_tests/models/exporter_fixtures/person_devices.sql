{{ config(materialized='table', tags=['cio_devices'],
          meta={'cio': {'kind': 'device', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'token_column': 'token', 'platform_column': 'platform', 'last_used_column': 'last_used_at',
                        'on_delete': 'delete', 'max_deletes': 1}}) }}
{#- People's push tokens in three states (env var CIO_FIXTURE_STEP): at step 2 tok-a was used again
    with a new app version, p2's tok-d is gone and p3's tok-e is new; at step 3 tok-b and tok-e
    are gone too (two removals, over max_deletes). -#}
{%- set step = env_var('CIO_FIXTURE_STEP', '1') | int %}
select 'p1' as person_id, 'tok-a' as token, 'ios' as platform,
       cast({{ "'2026-05-01 10:00:00'" if step == 1 else "'2026-05-03 10:00:00'" }} as timestamp) as last_used_at,
       {{ "'1.0'" if step == 1 else "'1.1'" }} as app_version
union all
select 'p1', 'tok-b', 'android', cast(null as timestamp), '1.0' where {{ step }} < 3
union all
select 'p2', 'tok-d', 'android', cast('2026-05-02 10:00:00' as timestamp), '2.0' where {{ step }} = 1
union all
select 'p3', 'tok-e', 'ios', cast(null as timestamp), '1.1' where {{ step }} = 2
