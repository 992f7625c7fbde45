{{ config(
    enabled=(var('cio_customer_attributes', []) | length > 0),
    materialized='view',
    tags=['cio'],
    meta={'cio': cio_sync.people_attributes_meta()},
) }}
{#- The customers input's own columns named in var cio_customer_attributes (first_name,
    country, ...), one row per valid person, sent as a second identify beside cio_people's: a
    view over int_cio__customers (its rows are already staged, typed and deduplicated by
    customer). With cio_identifier = email several customer rows can share a person: the
    earliest created one gives them, as in cio_people. Enabled only when the var names columns. -#}
{%- set identifier = cio_sync.identifier() -%}
{%- set by_email = identifier == 'email' -%}
select
    person_id as {{ identifier }}
    {%- for name, _ in cio_sync.customer_attributes(none) %},
    {{ name }}
    {%- endfor %}
from (
    select
        customers.*
        {%- if by_email %},
        {{ cio_sync.person_rank() }} = 1 as is_first
        {%- endif %}
    from {{ ref('int_cio__customers') }} as customers
    where _cio_reason is null
) as ranked
{%- if by_email %}
where is_first
{%- endif %}
