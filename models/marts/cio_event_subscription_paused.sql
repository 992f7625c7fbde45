{{ config(
    enabled=cio_sync.input_enabled('subscriptions'),
    materialized='table',
    contract={'enforced': true},
    tags=['cio'],
    meta={'cio': cio_sync.event_meta('subscription_paused', ['subscriptions'])},
) }}

{{ cio_sync.subscription_event('subscription_paused', 'paused') }}
