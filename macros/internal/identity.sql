{#- The one Customer.io identifier every model uses (var cio_identifier): customer_id or email. -#}
{% macro identifier() -%}
    {%- set value = var('cio_identifier', 'customer_id') -%}
    {%- if value not in ('customer_id', 'email') -%}
        {{ exceptions.raise_compiler_error("cio_sync: var cio_identifier must be 'customer_id' or 'email', not '" ~ value ~ "'.") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The Customer.io identifier kind (meta.cio.identifier.kind) of the chosen identifier. -#}
{% macro identifier_kind() -%}
    {{ return('email' if cio_sync.identifier() == 'email' else 'id') }}
{%- endmacro %}

{#- CTEs that resolve a row to a person: by customer_id first, then by a unique email match.
    Use with resolve_person(); both need int_cio__customers. In an incremental build only the
    customers the rows of `relation` can match are read (a full build reads them all, which
    keeps `relation` to one reference, so the planner knows its statistics). -#}
{% macro person_lookups(relation) -%}
cio_people_by_id as (
    select customer_id, person_id, email, do_not_message, _cio_reason as person_reason
    from {{ ref('int_cio__customers') }}
    where customer_id is not null
    {%- if cio_sync.is_incremental_run() %}
        and customer_id in (select customer_id from {{ relation }})
    {%- endif %}
),

cio_people_by_email as (
    select
        email,
        min(person_id) as person_id,
        min(customer_id) as customer_id,
        count(distinct person_id) as matches,
        max(case when do_not_message then 1 else 0 end) as do_not_message_flag
    from {{ ref('int_cio__customers') }}
    where _cio_reason is null and email is not null
    {%- if cio_sync.is_incremental_run() %}
        and email in (select email from {{ relation }})
    {%- endif %}
    group by email
)
{%- endmacro %}

{#- Customers staged since this model's last build, with the email they had before: rows that
    matched them by id, by email or by their old email are resolved again. -#}
{% macro changed_customers() -%}
    select customer_id, email, _cio_previous_email
    from {{ ref('stg_cio__customers') }}
    where {{ cio_sync.changed_since_last_build() }}
{%- endmacro %}

{#- The keys of `relation` (a staging model with customer_id and, with `email`, an email
    column) to resolve again: rows staged since this model's last build, and rows a changed
    customer (changed_customers) may resolve differently: by its id, its email or the
    email it had before. A union of lookups (rows_with_keys: through identity_indexes on
    PostgreSQL, semi-joins elsewhere), never `or ... in (...)`: PostgreSQL turns the latter into
    a subquery run for every row once it misjudges how many customers changed. -#}
{% macro keys_to_resolve(relation, key, email=true) -%}
    with changed_customers as {{ cio_sync.inline_cte() }} (
        {{ cio_sync.changed_customers() }}
    )
    select {{ key }} from {{ relation }} where {{ cio_sync.changed_since_last_build() }}
    union
    select {{ key }} from {{ cio_sync.rows_with_keys(relation, 'customer_id', 'select customer_id from changed_customers') }} as by_id
    {%- if email %}
    union
    select {{ key }} from {{ cio_sync.rows_with_keys(relation, 'email',
        'select email from changed_customers union select _cio_previous_email from changed_customers') }} as by_email
    {%- endif %}
{%- endmacro %}

{#- The staged rows an intermediate model resolves: in a full build the whole staging model;
    incrementally the rows of its key set `name` (rows_with_keys), which on PostgreSQL its
    pre-hook (stage_rows_to_resolve) writes to a temporary table and analyzes. Read through a
    common table expression that is not kept (inline_cte), the person lookups and the joins
    after it are then estimated at the rows and customers there are, where a kept one is
    estimated at 200 distinct values per column (int_cio__orders at 200,000 customers: 200
    customers for 21,616, and 7.4 million rows for 38,510). -#}
{% macro rows_to_resolve(name, relation, key, keys_sql) -%}
    {%- if cio_sync.is_incremental_run() -%}
    ({{ cio_sync.key_set(name ~ '_rows', cio_sync.rows_to_resolve_sql(name, relation, key, keys_sql)) }})
    {%- else -%}
    {{ relation }}
    {%- endif -%}
{%- endmacro %}

{% macro rows_to_resolve_sql(name, relation, key, keys_sql) -%}
    select staged.* from {{ cio_sync.rows_with_keys(relation, key, cio_sync.key_set(name, keys_sql)) }} as staged
{%- endmacro %}

{#- Pre-hook: the key set `name`, then the staged rows of its keys (rows_to_resolve). -#}
{% macro stage_rows_to_resolve(name, relation, key, keys_sql) -%}
    {%- set staged = [cio_sync.stage_key_set(name, keys_sql),
                      cio_sync.stage_key_set(name ~ '_rows', cio_sync.rows_to_resolve_sql(name, relation, key, keys_sql))]
        | select | list -%}
    {{ staged | join(';\n') }}
{%- endmacro %}

{#- The persons whose rows in `relation` (an intermediate model) changed since this model's
    last build: their person now and the one before, so that both are recomputed. For use in
    `in (...)` only: it may hold a null, which matches nothing. No `is not null` filter: the
    statistics cannot tell that the rows with a previous person are the recent ones, and
    PostgreSQL would estimate one row where there are thousands. -#}
{% macro persons_changed_in(relation) -%}
    select person_id from {{ relation }}
    where {{ cio_sync.changed_since_last_build() }}
    union
    select _cio_previous_person_id from {{ relation }}
    where {{ cio_sync.changed_since_last_build() }}
{%- endmacro %}

{#- The columns resolve_person selects after the given ones, in its order (a model comparing
    a resolved row with the one it holds compares these). -#}
{% macro resolved_person_columns() -%}
    {{ return(['person_id', 'customer_id', 'email', 'do_not_message', '_cio_reason', '_cio_column', '_cio_value']) }}
{%- endmacro %}

{#- Select `columns` of `relation` plus the resolved person (resolved_person_columns): person_id,
    customer_id, email, do_not_message, and the row's quarantine reason extended with
    person_quarantined (the person is in quarantine) and unresolvable_identifier (no person
    found). With cio_identifier = email a valid email resolves on its own (guest checkouts and
    orders). -#}
{% macro resolve_person(relation, columns) -%}
    {%- set by_email_mode = cio_sync.identifier() == 'email' -%}
    select
        {%- for column in columns %}
        resolved.{{ column }},
        {%- endfor %}
        resolved.person_id,
        resolved.customer_id,
        resolved.email,
        resolved.do_not_message,
        coalesce(resolved._cio_reason,
            case
                when resolved._person_reason is not null then 'person_quarantined'
                when resolved.person_id is null then 'unresolvable_identifier'
            end) as _cio_reason,
        coalesce(resolved._cio_reason_column,
            case when resolved._person_reason is not null or resolved.person_id is null
                then case when resolved._row_customer_id is not null then 'customer_id' else 'email' end
            end) as _cio_column,
        coalesce(resolved._cio_reason_value,
            case when resolved._person_reason is not null or resolved.person_id is null
                then coalesce(resolved._row_customer_id, resolved._row_email)
            end) as _cio_value
    from (
        select
            {%- for column in columns %}
            {{ relation }}.{{ column }},
            {%- endfor %}
            case
                when by_id.customer_id is not null then
                    case when by_id.person_reason is null then by_id.person_id end
                when by_email.matches = 1 then by_email.person_id
                {%- if by_email_mode %}
                when {{ relation }}.email is not null and {{ cio_sync.is_valid_email(relation ~ '.email') }}
                    then {{ relation }}.email
                {%- endif %}
            end as person_id,
            coalesce(by_id.customer_id, case when by_email.matches = 1 then by_email.customer_id end, {{ relation }}.customer_id) as customer_id,
            coalesce(by_id.email, by_email.email, {{ relation }}.email) as email,
            coalesce(by_id.do_not_message, by_email.do_not_message_flag = 1, false) as do_not_message,
            by_id.person_reason as _person_reason,
            {{ relation }}.customer_id as _row_customer_id,
            {{ relation }}.email as _row_email,
            {{ relation }}._cio_reason,
            {{ relation }}._cio_column as _cio_reason_column,
            {{ relation }}._cio_value as _cio_reason_value
        from {{ relation }}
        left join cio_people_by_id as by_id
            on by_id.customer_id = {{ relation }}.customer_id
        left join cio_people_by_email as by_email
            on by_email.email = {{ relation }}.email
            and by_id.customer_id is null
    ) as resolved
{%- endmacro %}

{#- Over customer rows (of int_cio__customers): 1 for the row that speaks for its person, the
    earliest created (then the least customer_id). With cio_identifier = email several
    customer rows share a person. -#}
{% macro person_rank() -%}
    row_number() over (
        partition by {{ cio_sync.sort_key('person_id') }}
        order by created_at, {{ cio_sync.sort_key('customer_id') }}
    )
{%- endmacro %}
