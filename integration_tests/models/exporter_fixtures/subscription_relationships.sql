{{ config(materialized='table', tags=['cio_relationships'],
          meta={'cio': {'kind': 'relationship', 'object_type_id': '1',
                        'identifier': {'column': 'person_id', 'kind': 'id'}, 'object_id_column': 'subscription_id',
                        'on_delete': 'delete', 'max_deletes': 1}}) }}
{#- Customers related to their subscriptions (objects of type 1), in three states (env var
    CIO_FIXTURE_STEP): at step 2 p1's `since` is gone, p2's subscription is cancelled,
    p3's relationship has left the model and p4's is new; at step 3 p1's and p2's have left too
    (two removals, over max_deletes). -#}
{%- set step = env_var('CIO_FIXTURE_STEP', '1') | int %}
select 'p1' as person_id, 'sub_1' as subscription_id, 'active' as status,
       {{ "cast('2026-01-01 00:00:00' as timestamp)" if step == 1 else "cast(null as timestamp)" }} as since
where {{ step }} < 3
union all
select 'p2', 'sub_2', {{ "'active'" if step == 1 else "'cancelled'" }}, cast('2026-02-01 00:00:00' as timestamp)
where {{ step }} < 3
union all
select 'p3', 'sub_3', 'paused', cast('2026-03-01 00:00:00' as timestamp) where {{ step }} = 1
union all
select 'p4', 'sub_4', 'active', cast('2026-04-01 00:00:00' as timestamp) where {{ step }} >= 2
