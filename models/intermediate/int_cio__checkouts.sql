{{ config(
    enabled=cio_sync.input_enabled('checkouts'),
    materialized='incremental',
    unique_key='checkout_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.stage_rows_to_resolve('checkouts', ref('stg_cio__checkouts'), 'checkout_id', cio_sync.keys_to_resolve(ref('stg_cio__checkouts'), 'checkout_id')) }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['checkout_id']),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Every staged checkout with a key, resolved to a person by customer_id, then by a unique email
    match. Incrementally: checkouts staged since the last build and those a changed customer
    may resolve differently. -#}

with checkouts as {{ cio_sync.inline_cte() if cio_sync.is_incremental_run() }} (
    {#- Incrementally the staged checkouts of the key set, through the key's index where there is
        one (rows_to_resolve). #}
    select staged.* from {{ cio_sync.rows_to_resolve('checkouts', ref('stg_cio__checkouts'), 'checkout_id',
        cio_sync.keys_to_resolve(ref('stg_cio__checkouts'), 'checkout_id')) }} as staged
    where staged.checkout_id is not null
),

{{ cio_sync.person_lookups('checkouts') }},

resolved as (
    {{ cio_sync.resolve_person('checkouts', [
        'checkout_id', 'started_at', 'cart_value', 'checkout_url', 'item_count', 'in_stock',
    ]) }}
)

select
    resolved.*,
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('checkout_id', cio_sync.key_set('checkouts', cio_sync.keys_to_resolve(ref('stg_cio__checkouts'), 'checkout_id'))) }} as held
    on held.checkout_id = resolved.checkout_id
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}
