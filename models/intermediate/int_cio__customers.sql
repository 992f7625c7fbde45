{#- Every staged customer with its Customer.io identifier (person_id). With cio_identifier =
    email, several customer rows may share one person; cio_people merges them. -#}
select
    {{ 'email' if cio_sync.identifier() == 'email' else 'customer_id' }} as person_id,
    customer_id,
    email,
    created_at,
    sms_opt_in,
    email_opt_in,
    coalesce(do_not_message, false) as do_not_message,
    _cio_reason,
    _cio_column,
    _cio_value
from {{ ref('stg_cio__customers') }}
