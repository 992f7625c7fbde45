{{ config(materialized='table', tags=['cio_objects'],
          meta={'cio': {'kind': 'object', 'object_type_id': '1',
                        'identifier': {'column': 'subscription_id', 'kind': 'object_id'},
                        'on_delete': 'delete', 'max_deletes': env_var('CIO_FIXTURE_MAX', '1') | int}}) }}
{#- Subscriptions as Customer.io objects of type 1, in two states (env var CIO_FIXTURE_STEP): at
    step 2 sub_2 is cancelled, sub_3 has left the model and sub_4 is new; at step 3 sub_1 and
    sub_2 have left too. -#}
{%- set step = env_var('CIO_FIXTURE_STEP', '1') | int %}
select 'sub_1' as subscription_id, 'monthly' as plan, 'active' as status,
       cast('2026-07-01 00:00:00' as timestamp) as next_charge_at, cast(null as varchar) as paused_reason
where {{ step }} < 3
union all
select 'sub_2', 'yearly', {{ "'active'" if step == 1 else "'cancelled'" }}, cast('2027-01-01 00:00:00' as timestamp),
       null
where {{ step }} < 3
union all
select 'sub_3', 'monthly', 'paused', null, 'travel' where {{ step }} = 1
union all
select 'sub_4', 'monthly', 'paused', cast('2026-07-15 00:00:00' as timestamp), 'moving' where {{ step }} >= 2
