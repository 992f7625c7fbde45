{#- `relation`'s rows with the first failing check of each, as three columns: _cio_reason,
    _cio_column, _cio_value. checks: list of (condition_sql, column_name, reason, value_sql);
    order is priority. Rows with a reason never reach a mart; they land in cio_quarantine with
    it. The checks run once per row (_cio_check, the number of the first failing one). -#}
{% macro flag_rows(relation, checks) -%}
select
    flagged.*,
    case _cio_check
        {%- for condition, column, reason, value in checks %}
        when {{ loop.index }} then '{{ reason }}'
        {%- endfor %}
    end as _cio_reason,
    case _cio_check
        {%- for condition, column, reason, value in checks %}
        when {{ loop.index }} then '{{ column }}'
        {%- endfor %}
    end as _cio_column,
    case _cio_check
        {%- for condition, column, reason, value in checks %}
        when {{ loop.index }} then cast({{ value }} as {{ cio_sync.type_string(1024) }})
        {%- endfor %}
    end as _cio_value
from (
    select
        {{ relation }}.*,
        case
            {%- for condition, column, reason, value in checks %}
            when {{ condition }} then {{ loop.index }}
            {%- endfor %}
        end as _cio_check
    from {{ relation }}
    {{ cio_sync.compute_once() }}
) as flagged
{%- endmacro %}

{#- A timestamp before 1970 ('-infinity', a year typed as 0202): no Customer.io time can hold it
    (event times are Unix seconds; cio-export rejects earlier ones). -#}
{% macro is_before_1970(expr) -%}
    ({{ expr }} < cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
{%- endmacro %}

{#- A timestamp later than now plus the allowed clock skew (var cio_future_tolerance_minutes). -#}
{% macro is_future(expr) -%}
    ({{ expr }} > {{ dbt.dateadd('minute', var('cio_future_tolerance_minutes', 5), cio_sync.utc_now()) }})
{%- endmacro %}

{#- Keep one row per key: valid rows first, then by `order_by`. Rows multiplied by joins
    upstream collapse here. Rows whose key is null are kept (each is quarantined). Keys are
    text unless named in `other_keys`. The first row is a boolean, not `row_number() = 1` in
    the filter: PostgreSQL estimates half the rows for a boolean and 0.5% for the comparison,
    and a join on a side a hundred times too small is planned wrong. -#}
{% macro deduplicate(relation, keys, order_by, other_keys=[]) -%}
    {%- set keys = [keys] if keys is string else keys -%}
    select * from (
        select
            {{ relation }}.*,
            row_number() over (
                partition by {% for key in keys %}{{ key if key in other_keys else cio_sync.sort_key(key) }}{{ ', ' if not loop.last }}{% endfor %}
                order by case when _cio_reason is null then 0 else 1 end, {{ order_by }}
            ) = 1 as _cio_first_of_key
        from {{ relation }}
    ) ranked
    where _cio_first_of_key
    {%- for key in keys %} or {{ key }} is null{% endfor %}
{%- endmacro %}

{#- Test rows by email domain (var cio_test_email_domains), e.g. ['example.com', 'test.myshop.com']. -#}
{% macro is_test_email(expr) -%}
    {%- set domains = var('cio_test_email_domains', []) -%}
    {%- if domains | length == 0 -%}
        false
    {%- else -%}
        ({%- for domain in domains %}{{ ' or ' if not loop.first }}{{ expr }} like '%@{{ domain | lower }}'{% endfor -%})
    {%- endif -%}
{%- endmacro %}
