{#- The select expression that turns one contract column of an input into its typed,
    normalized form, aliased to the contract name.

    columns:  source_columns() of the input (none when unknown)
    input:    input name, for error messages
    name:     contract column name
    as_type:  id | text | lower | upper | email | timestamp | boolean | money | integer
    required: a required column missing from the input is a compile error naming it;
              an optional one missing becomes a typed null. -#}
{% macro stage_column(columns, input, name, as_type, required=true, length=256) -%}
    {%- set known = columns is not none -%}
    {%- set present = (not known) or (name in columns) -%}
    {%- if not present and required -%}
        {{ exceptions.raise_compiler_error(
            "cio_sync: input '" ~ input ~ "' (var cio_" ~ input ~ ") has no column '" ~ name
            ~ "', which the input contract requires. Columns found: " ~ (columns.keys() | list | sort | join(', '))
            ~ ". Rename or derive it in the relation you configured (see docs/input-contract.md)."
        ) }}
    {%- endif -%}
    {%- set kind = columns.get(name, 'text') if known else none -%}
    {%- if as_type == 'id' and present and kind not in (none, 'text', 'integer') -%}
        {#- A key or identifier of another type would become a Customer.io id like
            "2020-01-02" or "1 day": a new profile per customer, and no test can tell. -#}
        {{ exceptions.raise_compiler_error(
            "cio_sync: input '" ~ input ~ "' (var cio_" ~ input ~ ") has column '" ~ name ~ "' of type "
            ~ kind ~ ", but keys and identifiers must be text or integers. Select the real id as '" ~ name
            ~ "' in the relation you configured (cast it to text or bigint if it is stored as another type; "
            ~ "see docs/input-contract.md)."
        ) }}
    {%- endif -%}
    {%- if not present -%}
        {%- set expr = 'null' -%}
        {%- set kind = 'text' -%}
    {%- else -%}
        {%- set expr = adapter.quote(name) if name != name | lower else name -%}
    {%- endif -%}

    {%- if as_type == 'timestamp' -%}
        {%- if not present -%}
            cast(null as {{ dbt.type_timestamp() }})
        {%- else -%}
            {{ cio_sync.to_utc(expr, 'aware' if kind == 'aware' else 'naive') }}
        {%- endif -%}
    {%- elif as_type == 'boolean' -%}
        {%- if not present -%}
            cast(null as {{ dbt.type_boolean() }})
        {%- else -%}
            {{ cio_sync.safe_cast_boolean(expr, kind or 'text') }}
        {%- endif -%}
    {%- elif as_type == 'money' -%}
        {{ cio_sync.safe_cast_number(expr, 'number' if kind in ('number', 'integer') else 'text') }}
    {%- elif as_type == 'integer' -%}
        {{ cio_sync.safe_cast_number(expr, 'number' if kind in ('number', 'integer') else 'text', dbt.type_int()) }}
    {%- elif as_type == 'email' -%}
        {{ cio_sync.normalize_email('cast(' ~ expr ~ ' as ' ~ cio_sync.type_string(length) ~ ')') }}
    {%- elif as_type == 'upper' -%}
        nullif(upper(trim(cast({{ expr }} as {{ cio_sync.type_string(length) }}))), '')
    {%- elif as_type == 'lower' -%}
        nullif(lower(trim(cast({{ expr }} as {{ cio_sync.type_string(length) }}))), '')
    {%- else -%}
        nullif(trim(cast({{ expr }} as {{ cio_sync.type_string(length) }})), '')
    {%- endif %} as {{ name }}
{%- endmacro %}

{#- The raw value of a column as text (for the quarantine's value column), or null when absent. -#}
{% macro raw_text(columns, name) -%}
    {%- if columns is not none and name not in columns -%}
        cast(null as {{ cio_sync.type_string() }})
    {%- elif columns is not none and columns[name] == 'boolean' -%}
        case when {{ name }} then 'true' when not {{ name }} then 'false' end
    {%- else -%}
        cast({{ name }} as {{ cio_sync.type_string() }})
    {%- endif -%}
{%- endmacro %}
