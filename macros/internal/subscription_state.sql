{#- Each subscription as it stands: its latest status row among those kept (not quarantined,
    its customer known), with when it started (its first such row). One row per subscription;
    the whole history is read (subscriptions are few beside orders: 300,000 status rows at a
    million customers), so the mart is a table rebuilt each build. -#}
{% macro current_subscriptions() -%}
select * from (
    select
        subscription_id,
        customer_id,
        email,
        status,
        plan,
        next_charge_at,
        updated_at,
        min(updated_at) over (partition by {{ cio_sync.sort_key('subscription_id') }}) as started_at,
        row_number() over (
            partition by {{ cio_sync.sort_key('subscription_id') }} order by updated_at desc, status
        ) as _cio_rank
    from {{ ref('int_cio__subscriptions') }}
    where _cio_reason is null
) as ranked
where _cio_rank = 1
{%- endmacro %}
