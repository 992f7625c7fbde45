{{ config(
    enabled=cio_sync.subscription_objects_enabled(),
    materialized='incremental',
    incremental_strategy='cio_sync_mirror',
    unique_key=[cio_sync.identifier(), 'subscription_id'],
    on_schema_change='fail',
    contract={'enforced': true},
    tags=['cio'],
    dist=cio_sync.identifier(),
    meta={'cio': cio_sync.subscription_relationship_meta()},
) }}
{#- One row per person and subscription: the person related to the subscription object, with
    the subscription's status and start as relationship attributes. -#}

select
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(subscription_id as {{ cio_sync.type_string() }}) as subscription_id,
    cast(status as {{ cio_sync.type_string(64) }}) as status,
    cast(started_at as {{ dbt.type_timestamp() }}) as started_at
from ({{ cio_sync.current_subscriptions() }}) as current_subscriptions
