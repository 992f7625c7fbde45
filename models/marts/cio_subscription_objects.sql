{{ config(
    enabled=cio_sync.subscription_objects_enabled(),
    materialized='incremental',
    incremental_strategy='cio_sync_mirror',
    unique_key='subscription_id',
    on_schema_change='fail',
    contract={'enforced': true},
    tags=['cio'],
    dist='subscription_id',
    meta={'cio': cio_sync.subscription_object_meta()},
) }}
{#- One row per subscription, synced as a Customer.io object (var
    cio_subscription_object_type_id): plan, status, next charge. -#}

select
    cast(subscription_id as {{ cio_sync.type_string() }}) as subscription_id,
    cast(status as {{ cio_sync.type_string(64) }}) as status,
    cast(plan as {{ cio_sync.type_string() }}) as plan,
    cast(next_charge_at as {{ dbt.type_timestamp() }}) as next_charge_at,
    cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
    cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at
from ({{ cio_sync.current_subscriptions() }}) as current_subscriptions
