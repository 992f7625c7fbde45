{{ config(materialized='view') }}
{#- Every staged customer with its Customer.io identifier (person_id, per var cio_identifier).
    With cio_identifier = email, several customer rows may share one person; cio_people merges
    them. A view: staging already holds one typed row per customer. -#}
{%- set by_email = cio_sync.identifier() == 'email' -%}
select
    {{ 'email' if by_email else 'customer_id' }} as person_id,
    customer_id,
    email,
    created_at,
    sms_opt_in,
    email_opt_in,
    coalesce(do_not_message, false) as do_not_message,
    {%- for name, _ in cio_sync.customer_attributes(none) %}
    {{ name }},
    {%- endfor %}
    _cio_reason,
    _cio_column,
    _cio_value,
    {{ '_cio_previous_email' if by_email else 'customer_id' }} as _cio_previous_person_id,
    _cio_previous_email,
    _cio_staged_at
from {{ ref('stg_cio__customers') }}
