{{ config(enabled=cio_sync.input_enabled('checkouts')) }}

with checkouts as (
    select * from {{ ref('stg_cio__checkouts') }}
),

{{ cio_sync.person_lookups() }}

{{ cio_sync.resolve_person('checkouts', ['checkout_id', 'started_at', 'cart_value', 'checkout_url', 'item_count', 'in_stock']) }}
