{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook=["{{ cio_sync.stage_key_set('persons', cio_sync.people_to_recompute) }}",
              "{{ cio_sync.delete_rows_of(cio_sync.identifier(), cio_sync.key_set('persons', cio_sync.people_to_recompute)) }}"],
    post_hook="{{ cio_sync.refresh_days_since_last_order() }}",
    contract={'enforced': true},
    indexes=cio_sync.lookup_index([cio_sync.identifier()], unique=true),
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort=cio_sync.identifier(),
    meta={'cio': cio_sync.people_meta()},
) }}
{#- One row per valid person. Columns of unconfigured optional inputs are typed nulls,
    excluded from the sync by meta.cio (see people_meta). Incrementally: the persons with a row
    changed since the last build in any input (people_to_recompute) are recomputed whole;
    days_since_last_order is brought up to date for everyone (refresh_days_since_last_order). -#}
{%- set recompute = cio_sync.is_incremental_run() -%}
{#- Per-person aggregates of an incremental build are grouped by the analyzed key set's column
    (joined as `k`): PostgreSQL then estimates as many groups as persons recomputed, where by
    the input's own column it would take the input's distinct persons (every join of the final
    select multiplied by ~7x at 200,000 customers). -#}
{%- set person = 'k.person_id' if recompute else 'person_id' -%}
{%- set keyed = 'as i inner join persons_to_recompute as k on i.person_id = k.person_id' if recompute else '' -%}

with
{%- if recompute %}
persons_to_recompute as {{ cio_sync.inline_cte() }} (
    {{ cio_sync.key_set('persons', cio_sync.people_to_recompute) }}
),
{%- endif %}

customers as (
    select * from {{ ref('int_cio__customers') }}
    where _cio_reason is null
    {%- if recompute %}
        and person_id in (select person_id from persons_to_recompute)
    {%- endif %}
),

persons as (
    {#- With cio_identifier = email several customer rows can share a person: the earliest
        created one gives customer_id and created_at; suppression holds if any says so (a
        window over the same partition, so one sort). Ranks are kept as booleans: PostgreSQL
        estimates half the rows for a boolean filter where it guesses 0.5% for `rank = 1`,
        and every join after it would be planned on a side hundreds of times too small. #}
    select
        person_id,
        customer_id,
        email,
        created_at,
        sms_opt_in,
        email_opt_in,
        do_not_message_flag = 1 as do_not_message
    from (
        select
            customers.*,
            {{ cio_sync.person_rank() }} = 1 as is_first,
            max(case when customers.do_not_message then 1 else 0 end)
                over (partition by {{ cio_sync.sort_key('person_id') }}) as do_not_message_flag
        from customers
    ) as ranked
    where is_first
),

orders as (
    {#- What each person's purchases add up to, and the top category of the latest one that
        has one. #}
    select
        person_orders.person_id,
        person_orders.orders_count,
        person_orders.lifetime_value,
        person_orders.first_order_at,
        person_orders.last_order_at,
        person_orders.last_category as product_category
    from {{ cio_sync.rows_with_keys(ref('int_cio__person_orders'), 'person_id', 'select person_id from persons_to_recompute')
        if recompute else ref('int_cio__person_orders') }} as person_orders
)

{%- if cio_sync.input_enabled('order_lines') %},

reorder as (
    {#- Earliest run-out date among the latest purchase of each replenishable SKU. Grouped by the
        key set's column too (see `person` above): by the rows looked up, PostgreSQL estimated
        29 groups where there were 127,000 and sorted a million rows to disk for them. #}
    select
        {{ person }} as person_id,
        min(i.replenishment_due_at) as next_reorder_due_at
    from {{ cio_sync.rows_with_keys(ref('int_cio__replenishments'), 'person_id', 'select person_id from persons_to_recompute')
        if recompute else ref('int_cio__replenishments') }} {{ keyed if recompute else 'as i' }}
    group by {{ person }}
)
{%- endif %}

{%- if cio_sync.input_enabled('subscriptions') %},

subscriptions as (
    select
        person_id,
        max(case when status = 'active' then 1 else 0 end) = 1 as is_subscriber,
        {#- The status of the most recently changed subscription. #}
        max(case when is_latest then status end) as subscription_status
    from (
        select
            person_id,
            status,
            row_number() over (
                partition by {{ cio_sync.sort_key('person_id') }}
                order by updated_at desc, {{ cio_sync.sort_key('subscription_id') }}
            ) = 1 as is_latest
        from (
            select
                person_id,
                subscription_id,
                status,
                updated_at,
                row_number() over (partition by {{ cio_sync.sort_key('subscription_id') }} order by updated_at desc) = 1 as is_current
            from {{ ref('int_cio__subscriptions') }}
            where _cio_reason is null
            {%- if recompute %}
                and person_id in (select person_id from persons_to_recompute)
            {%- endif %}
        ) as changes
        where is_current
    ) as latest
    group by person_id
)
{%- endif %}

{%- if cio_sync.input_enabled('refunds') %},

refunds as (
    {#- Few persons have a refund: grouped by the key set's column it would be estimated at every
        person recomputed. #}
    select distinct person_id
    from {{ ref('int_cio__refunds') }}
    where _cio_reason is null
    {%- if recompute %}
        and person_id in (select person_id from persons_to_recompute)
    {%- endif %}
)
{%- endif %}

{%- if cio_sync.input_enabled('checkouts') %},

checkouts as (
    select
        {{ person }} as person_id,
        max(started_at) as last_checkout_started_at
    from {{ ref('int_cio__checkouts') }} {{ keyed }}
    where _cio_reason is null
    group by {{ person }}
)
{%- endif %}

select
    cast(persons.customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(persons.email as {{ cio_sync.type_string() }}) as email,
    cast(persons.created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast(orders.first_order_at as {{ dbt.type_timestamp() }}) as first_order_at,
    cast(orders.last_order_at as {{ dbt.type_timestamp() }}) as last_order_at,
    cast(coalesce(orders.orders_count, 0) as {{ dbt.type_int() }}) as orders_count,
    cast(coalesce(orders.lifetime_value, 0) as {{ cio_sync.type_money() }}) as lifetime_value,
    cast(orders.lifetime_value / nullif(orders.orders_count, 0) as {{ cio_sync.type_money() }}) as average_order_value,
    cast({{ dbt.datediff('orders.last_order_at', cio_sync.utc_now(), 'day') }} as {{ dbt.type_int() }}) as days_since_last_order,
    {%- if cio_sync.input_enabled('order_lines') %}
    cast(orders.product_category as {{ cio_sync.type_string() }}) as last_product_category,
    cast(reorder.next_reorder_due_at as {{ dbt.type_timestamp() }}) as next_reorder_due_at,
    {%- else %}
    cast(null as {{ cio_sync.type_string() }}) as last_product_category,
    cast(null as {{ dbt.type_timestamp() }}) as next_reorder_due_at,
    {%- endif %}
    coalesce(orders.lifetime_value, 0) >= {{ var('cio_vip_ltv_threshold', 500) }} as is_vip,
    {%- if cio_sync.input_enabled('subscriptions') %}
    coalesce(subscriptions.is_subscriber, false) as is_subscriber,
    cast(subscriptions.subscription_status as {{ cio_sync.type_string(64) }}) as subscription_status,
    {%- else %}
    cast(null as {{ dbt.type_boolean() }}) as is_subscriber,
    cast(null as {{ cio_sync.type_string(64) }}) as subscription_status,
    {%- endif %}
    persons.sms_opt_in,
    persons.email_opt_in,
    {%- if cio_sync.input_enabled('refunds') %}
    refunds.person_id is not null as has_refund,
    {%- else %}
    cast(null as {{ dbt.type_boolean() }}) as has_refund,
    {%- endif %}
    persons.do_not_message,
    {%- if cio_sync.input_enabled('checkouts') %}
    cast(checkouts.last_checkout_started_at as {{ dbt.type_timestamp() }}) as last_checkout_started_at
    {%- else %}
    cast(null as {{ dbt.type_timestamp() }}) as last_checkout_started_at
    {%- endif %}
from persons
left join orders on persons.person_id = orders.person_id
{%- if cio_sync.input_enabled('order_lines') %}
left join reorder on persons.person_id = reorder.person_id
{%- endif %}
{%- if cio_sync.input_enabled('subscriptions') %}
left join subscriptions on persons.person_id = subscriptions.person_id
{%- endif %}
{%- if cio_sync.input_enabled('refunds') %}
left join refunds on persons.person_id = refunds.person_id
{%- endif %}
{%- if cio_sync.input_enabled('checkouts') %}
left join checkouts on persons.person_id = checkouts.person_id
{%- endif %}
-- depends_on: {{ ref('int_cio__orders') }}{{ (', ' ~ ref('int_cio__order_summaries')) if cio_sync.input_enabled('order_lines') }}
