{{ config(
    enabled=cio_sync.input_enabled('devices'),
    materialized='incremental',
    incremental_strategy='cio_sync_mirror',
    unique_key='token',
    on_schema_change='fail',
    contract={'enforced': true},
    tags=['cio'],
    dist=cio_sync.identifier(),
    meta={'cio': cio_sync.device_meta()},
) }}
{#- One row per device token kept (its customer known, its platform ios or android, not
    deleted): synced as the person's device, removed from them when it leaves (deleted_at set,
    moved to another customer, quarantined), within var cio_device_max_deletes. -#}

select
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(token as {{ cio_sync.type_string(1024) }}) as token,
    cast(platform as {{ cio_sync.type_string(16) }}) as platform,
    cast(last_used_at as {{ dbt.type_timestamp() }}) as last_used_at
from {{ ref('int_cio__devices') }}
where _cio_reason is null
    and deleted_at is null
