{#- Every staged order resolved to a person. counts_as_purchase is false for statuses in
    var cio_excluded_order_statuses (cancelled and voided orders count toward nothing). -#}
{%- set excluded = var('cio_excluded_order_statuses', ['cancelled', 'canceled', 'voided']) -%}

with orders as (
    select * from {{ ref('stg_cio__orders') }}
),

{{ cio_sync.person_lookups() }},

resolved as (
    {{ cio_sync.resolve_person('orders', ['order_id', 'ordered_at', 'order_total', 'status', 'discount_code', 'currency']) }}
)

select
    resolved.*,
    {%- if excluded | length > 0 %}
    coalesce(status not in ({% for s in excluded %}'{{ s | lower }}'{{ ', ' if not loop.last }}{% endfor %}), true) as counts_as_purchase
    {%- else %}
    true as counts_as_purchase
    {%- endif %}
from resolved
