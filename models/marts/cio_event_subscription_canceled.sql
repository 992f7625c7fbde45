{{ config(
    enabled=cio_sync.input_enabled('subscriptions'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ cio_sync.delete_rows_of('subscription_id', cio_sync.subscriptions_changed()) }}",
    contract={'enforced': true},
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort='event_at',
    meta={'cio': cio_sync.event_meta('subscription_canceled', ['subscriptions'])},
) }}

{{ cio_sync.subscription_event('subscription_canceled', 'canceled') }}
